"""A worker started before its topics exist: it creates them (SCAMWATCH_CREATE_TOPICS, the
default), or, when it may not, it consumes them within seconds of another client creating
them; either way every expected alert comes out. An existing topic is never altered.

The shared broker auto-creates a topic as soon as a consumer asks for it (Kafka's default),
so "another client creates them later" runs on a broker of the test's own with
``auto.create.topics.enable=false``, on free loopback ports, stopped afterwards."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from engine.core.models import Indicator, IndicatorType
from engine.devtools.stack import KAFKA_HEAP, kafka_libs, port_open
from engine.settings import Settings, load_settings
from engine.store.redis import RedisStore
from engine.stream.topics import prepare_topics
from tests.integration.worker_support import (
    DATA_PATHS,
    Read,
    Topics,
    WorkerProcess,
    call_event,
    create_topics,
    delete_topics,
    free_port,
    produce,
    read_topic,
    web_event,
)

SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
# DESIGN.md's "within 5 s of their creation" is what the worker is configured for (the
# consumer's metadata refresh, checked in tests/unit/stream/test_data_path_settings.py); here
# the wait is generous, for a loaded machine, and the measured delay is printed
CONSUMED_WITHIN_S = 60.0


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Iterator[Topics]:
    t = Topics(unique_name)
    yield t  # not created here: that is what the tests are about
    asyncio.run(delete_topics(kafka_bootstrap, t.made))


def _own_broker_config(kdir: Path, port: int, controller: int) -> Path:
    props = kdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={kdir / 'data'}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=2",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )
    )
    return props


async def _broker_answers(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def strict_kafka(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A single-node KRaft broker that never auto-creates topics; yields its bootstrap."""
    java = shutil.which("java")
    assert java, "java is needed for the test's own broker (make setup installs it)"
    libs = kafka_libs(settings, print)
    kdir = tmp_path_factory.mktemp("strict-kafka")
    port, controller = free_port(), free_port()
    props = _own_broker_config(kdir, port, controller)
    cluster_id = "x"
    while not cluster_id[0].isalnum():  # a leading "-" reads as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    classpath = f"{libs}/*"
    fmt = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
    done = subprocess.run(
        [*fmt, "-t", cluster_id, "-c", str(props)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log = (kdir / "stdout.log").open("ab")
    proc = subprocess.Popen(
        [java, *KAFKA_HEAP.split(), "-cp", classpath, "kafka.Kafka", str(props)],
        env={**os.environ, "KAFKA_HEAP_OPTS": KAFKA_HEAP},
        cwd=kdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (port_open("127.0.0.1", port) and asyncio.run(_broker_answers(bootstrap))):
            assert proc.poll() is None, (kdir / "stdout.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the test's own broker did not start in 120 s"
            time.sleep(0.5)
        yield bootstrap
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix=key_prefix)
    s.upsert(
        [
            Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",)),
            Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("test",)),
        ]
    )
    return s


async def partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partition count of each existing topic of ``names``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        if not wanted:
            return {}
        return {
            info["topic"]: len(info["partitions"])
            for info in await admin.describe_topics(wanted)
            if info["error_code"] == 0
        }
    finally:
        await admin.close()


def settled_partitions(
    bootstrap: str, names: list[str], expected: dict[str, int], within: float = 30.0
) -> dict[str, int]:
    """``partitions`` once it equals ``expected`` (a new topic takes a moment to show in
    metadata), or as it is after ``within`` s."""
    deadline = time.monotonic() + within
    found = asyncio.run(partitions(bootstrap, names))
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        found = asyncio.run(partitions(bootstrap, names))
    return found


def send_and_expect(bootstrap: str, topics: Topics) -> None:
    """Produce scam and clean calls and web events; every expected alert comes out."""
    calls = [
        (f"p1:s{i}".encode(), call_event(i, callee=SCAM_NUMBER if i % 2 else "+12025550111"))
        for i in range(40)
    ]
    web = [
        (f"p1:s{i}".encode(), web_event(i, host=f"x.{SCAM_DOMAIN}" if i % 2 else "example.org"))
        for i in range(40)
    ]
    expected = {f"c{i}" for i in range(1, 40, 2)} | {f"w{i}" for i in range(1, 40, 2)}

    async def go() -> list[Read]:
        await produce(bootstrap, topics.calls, calls)
        await produce(bootstrap, topics.web, web)
        return await read_topic(
            bootstrap,
            topics.alerts,
            until=lambda r: expected <= {str(a.json()["event_id"]) for a in r},
        )

    alerts = asyncio.run(go())
    assert {str(a.json()["event_id"]) for a in alerts} == expected


def test_worker_started_before_its_topics_creates_them_and_alerts(
    kafka_bootstrap: str, topics: Topics, store: RedisStore, key_prefix: str, tmp_path: Path
) -> None:
    assert asyncio.run(partitions(kafka_bootstrap, topics.all)) == {}
    worker = WorkerProcess(
        topics,
        key_prefix,
        tmp_path,
        extra_env={"SCAMWATCH_TOPIC_PARTITIONS": "3"},
        data_path="agents",
    ).start()
    try:
        worker.wait_assigned()
        expected = dict.fromkeys(topics.all, 3)
        assert settled_partitions(kafka_bootstrap, topics.all, expected) == expected
        worker.wait_metric(lambda m: m["scamwatch_assigned_partitions"] == 6)
        send_and_expect(kafka_bootstrap, topics)
        assert "created topics" in worker.log_tail(400)
    finally:
        worker.kill()


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_worker_that_may_not_create_topics_consumes_them_once_another_client_does(
    strict_kafka: str,
    unique_name: str,
    store: RedisStore,
    key_prefix: str,
    tmp_path: Path,
    data_path: str,
) -> None:
    topics = Topics(unique_name)
    worker = WorkerProcess(
        topics,
        key_prefix,
        tmp_path,
        extra_env={
            "SCAMWATCH_CREATE_TOPICS": "false",
            "SCAMWATCH_KAFKA_BOOTSTRAP": strict_kafka,
            # the discover agent's table needs the partition count of `sightings`, so with
            # discovery on such a worker waits for that topic before it starts (README)
            "SCAMWATCH_DISCOVERY": "off",
        },
        data_path=data_path,
    ).start()
    try:
        deadline = time.monotonic() + 90
        while "SCAMWATCH_CREATE_TOPICS is false" not in worker.log_tail(400):
            assert time.monotonic() < deadline, worker.log_tail()
            assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.2)
        # in the group, on an empty assignment: from here it must find the topics itself
        while "assigned 0 input partitions" not in worker.log_tail(400):
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.2)
        assert worker.metrics()["scamwatch_assigned_partitions"] == 0
        assert asyncio.run(partitions(strict_kafka, topics.all)) == {}

        asyncio.run(create_topics(strict_kafka, topics.all, partitions=2))
        created = time.monotonic()
        worker.wait_metric(
            lambda m: m["scamwatch_assigned_partitions"] == 4, timeout=CONSUMED_WITHIN_S
        )
        took = time.monotonic() - created
        print(f"input topics consumed {took:.1f} s after their creation ({data_path})")
        send_and_expect(strict_kafka, topics)
    finally:
        worker.kill()


def topic_settings(bootstrap: str, topics: Topics, **more: object) -> Settings:
    names = {
        "calls": topics.calls,
        "web": topics.web,
        "alerts": topics.alerts,
        "deadletter": topics.deadletter,
        "sightings": topics.sightings,
    }
    return load_settings(kafka={"bootstrap": bootstrap}, topics={**names, **more})


def test_existing_topics_are_left_as_they_are_and_a_partition_mismatch_is_a_warning(
    kafka_bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(create_topics(kafka_bootstrap, [topics.calls], partitions=2))
    asyncio.run(create_topics(kafka_bootstrap, [topics.web], partitions=3))
    settings = topic_settings(kafka_bootstrap, topics, partitions=4)
    with caplog.at_level(logging.INFO, logger="engine.stream.topics"):
        assert asyncio.run(prepare_topics(settings)) == []
    expected = {
        topics.calls: 2,
        topics.web: 3,
        topics.alerts: 4,
        topics.deadletter: 4,
        topics.sightings: 4,
    }
    assert settled_partitions(kafka_bootstrap, topics.all, expected) == expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{topics.calls} has 2 partitions and {topics.web} has 3: left as they are (nothing "
        "here needs them co-partitioned, but the load per worker is uneven)"
    ]
    # a second worker start: nothing to create, nothing changed
    caplog.clear()
    assert asyncio.run(prepare_topics(settings)) == []
    assert not [r for r in caplog.records if "created topics" in r.getMessage()]
    assert asyncio.run(partitions(kafka_bootstrap, [topics.calls]))[topics.calls] == 2


def test_a_replication_the_cluster_cannot_give_is_a_bad_setting(
    kafka_bootstrap: str, topics: Topics
) -> None:
    from engine.errors import ConfigError

    settings = topic_settings(kafka_bootstrap, topics, replication=3)  # one broker here
    with pytest.raises(ConfigError) as failed:
        asyncio.run(prepare_topics(settings))
    assert "SCAMWATCH_TOPIC_REPLICATION" in str(failed.value)
