"""`scamwatch stack up --brokers 3 --secure` for real: three KRaft nodes on ports of their own
(from 19092, own SCAMWATCH_STATE_DIR, a cluster id beginning with '-' already written there),
replicating, one broker stopped alone and brought back, SCRAM and TLS listeners that let in
the right client and refuse the wrong one, and no secret in any output or log.

One cluster serves the whole module (a 3-broker start costs tens of seconds here)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

pytestmark = pytest.mark.stack

DASH_ID = (
    "-Zz9kq2WQf6GkQ2zGf1w0A"  # an id older Kafka tools could make; argparse reads it as a flag
)
SASL = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
SSL = "127.0.0.1:19098,127.0.0.1:19099,127.0.0.1:19100"
INTERNAL = "127.0.0.1:19101"
USER = "alice"
PASSWORD = f"pw-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    state: Path
    output: list[str]  # everything the stack commands printed, for the secret check

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "stack", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.output.append(done.stdout + done.stderr)
        return done

    def pid(self, broker: int) -> int:
        return int((self.state / f"kafka-{broker}.pid").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("cluster") / "state"
    (state / "kafka").mkdir(parents=True)
    (state / "kafka" / "cluster.id").write_text(DASH_ID)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
    env |= {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "SCAMWATCH_REDIS_URL": "redis://127.0.0.1:16579/0",
        "SCAMWATCH_STATE_DIR": str(state),
        "SCAMWATCH_KAFKA_SASL_USERNAME": USER,
        "SCAMWATCH_KAFKA_SASL_PASSWORD": PASSWORD,
        "COLUMNS": "200",
    }
    stack = Cluster(env, state, [])
    try:
        up = stack.run("up", "--brokers", "3", "--secure")
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack
    finally:
        pids = [int(p.read_text()) for p in state.glob("*.pid")]
        down = stack.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
        for pid in pids:
            assert not _running(pid), f"pid {pid} still running after `stack down`"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _sasl(password: str = PASSWORD) -> dict[str, Any]:
    return {
        "bootstrap_servers": SASL,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
    }


async def _round_trip(topic: str, group: str | None = None, **client: Any) -> None:
    """Produce one record with acks=all and read it back (in ``group``, committing)."""
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(acks="all", request_timeout_ms=15_000, **client)
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, token), 30)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **client
    )
    await asyncio.wait_for(consumer.start(), 30)
    try:
        async with asyncio.timeout(45):
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                if any(r.value == token for recs in batch.values() for r in recs):
                    break
        if group:
            await consumer.commit()
    finally:
        await consumer.stop()


async def _replicas(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=INTERNAL)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return [len(p["replicas"]) for p in described["partitions"]]
    finally:
        await admin.close()


async def _broker_config(broker: int) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=INTERNAL)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(broker))]
        )
    finally:
        await admin.close()
    return {e[0]: e[1] for r in responses for res in r.resources for e in res[4]}


def test_a_state_directory_with_a_dash_cluster_id_starts(cluster: Cluster) -> None:
    for broker in (1, 2, 3):
        meta = cluster.state / "kafka" / f"broker-{broker}" / "data" / "meta.properties"
        assert f"cluster.id={DASH_ID}\n" in meta.read_text()
    assert "starting Kafka broker 3" in cluster.output[0]


async def test_records_are_replicated_to_three_brokers(cluster: Cluster) -> None:
    topic = f"test-{uuid.uuid4().hex[:12]}"
    await _round_trip(topic, group=topic, **_sasl())  # auto-created with the brokers' defaults
    assert await _replicas(topic) == [3]
    assert set(await _replicas("__consumer_offsets")) == {3}
    config = await _broker_config(2)
    assert config["default.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"


async def test_scram_lets_in_the_right_password_only(cluster: Cluster) -> None:
    await _round_trip(f"test-{uuid.uuid4().hex[:12]}", **_sasl())
    for client in (_sasl("not-the-password"), {"bootstrap_servers": SASL}):
        producer = AIOKafkaProducer(request_timeout_ms=10_000, **client)
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.start(), 30)
        await producer.stop()


async def test_tls_works_with_the_stacks_ca_only(cluster: Cluster) -> None:
    ca = cluster.state / "kafka" / "tls" / "ca.pem"
    assert "BEGIN CERTIFICATE" in ca.read_text()
    tls = {"bootstrap_servers": SSL, "security_protocol": "SSL"}
    await _round_trip(
        f"test-{uuid.uuid4().hex[:12]}", **tls, ssl_context=create_ssl_context(cafile=str(ca))
    )
    producer = AIOKafkaProducer(request_timeout_ms=10_000, **tls, ssl_context=create_ssl_context())
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()


def test_one_broker_stops_alone_and_up_brings_it_back(cluster: Cluster) -> None:
    before = {b: cluster.pid(b) for b in (1, 2, 3)}
    down = cluster.run("down", "--broker", "2")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped: kafka-2" in down.stdout
    assert not _running(before[2])
    assert _running(before[1]) and _running(before[3])
    status = cluster.run("status")
    assert status.returncode == 1
    rows = {m[0]: m[1] for m in re.findall(r"(kafka-\d)\s*│\s*\S+\s*│\s*(\w+)", status.stdout)}
    assert rows == {"kafka-1": "up", "kafka-2": "down", "kafka-3": "up"}, status.stdout
    # two in-sync replicas of three still take acks=all writes (min.insync.replicas=2)
    asyncio.run(_round_trip(f"test-{uuid.uuid4().hex[:12]}", **_sasl()))
    up = cluster.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "starting Kafka broker 2" in up.stdout
    assert "Kafka broker 1 already up" in up.stdout and "Kafka broker 3 already up" in up.stdout
    assert {b: cluster.pid(b) for b in (1, 3)} == {1: before[1], 3: before[3]}
    status = cluster.run("status")
    assert status.returncode == 0, status.stdout
    for broker, port in ((1, 19092), (2, 19093), (3, 19094)):
        assert re.search(
            rf"kafka-{broker}\s*│\s*127\.0\.0\.1:{port}\s*│\s*up\s*│\s*scamwatch\s*│\s*{cluster.pid(broker)}",
            status.stdout,
        ), status.stdout


def test_no_secret_in_status_output_or_logs(cluster: Cluster) -> None:
    assert cluster.run("status").returncode == 0
    store_password = (cluster.state / "kafka" / "tls" / "store.password").read_text().strip()
    secrets_ = {"SCRAM password": PASSWORD, "keystore password": store_password}
    logs = [p for p in cluster.state.rglob("*.log")]
    assert len(logs) >= 7  # server.log and stdout.log of each broker, redis.log
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts |= {f"command output {i}": out for i, out in enumerate(cluster.output)}
    for what, secret in secrets_.items():
        leaked = [where for where, text in texts.items() if secret in text]
        assert not leaked, f"the {what} appears in {leaked}"
    client_env = cluster.state / "kafka" / "client-sasl.env"
    assert client_env.stat().st_mode & 0o077 == 0
    assert f"SCAMWATCH_KAFKA_SASL_PASSWORD={PASSWORD}" in client_env.read_text()
