"""Helpers of the worker integration tests: topics, worker subprocesses, producing, reading
topics to the end, scraping /metrics. Everything listens on 127.0.0.1 and every wait is
bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from engine.devtools.scrape import MetricsScrape, scrape_metrics

SCAMWATCH = str(Path(sys.executable).with_name("scamwatch"))
# the worker's two data paths (SCAMWATCH_DATA_PATH): the worker tests run on both
DATA_PATHS = ("inline", "agents")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Topics:
    """The topic names and consumer group of one test (all unique)."""

    base: str
    calls: str = ""
    web: str = ""
    alerts: str = ""
    deadletter: str = ""
    sightings: str = ""
    app_id: str = ""

    def __post_init__(self) -> None:
        self.calls = f"{self.base}-calls"
        self.web = f"{self.base}-web"
        self.alerts = f"{self.base}-alerts"
        self.deadletter = f"{self.base}-deadletter"
        self.sightings = f"{self.base}-sightings"
        self.app_id = f"{self.base}-app"

    @property
    def all(self) -> list[str]:
        return [self.calls, self.web, self.alerts, self.deadletter, self.sightings]

    @property
    def made(self) -> list[str]:
        """Every topic of the test once a worker ran: :attr:`all` and the discover agent's
        table changelog (what a test deletes when it is done)."""
        return [*self.all, f"{self.app_id}-scamwatch-discovery-changelog"]


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception:
        pass  # best effort cleanup
    finally:
        await admin.close()


def topics_fixture(partitions: int) -> Callable[..., Iterator[Topics]]:
    """A test module's ``topics`` fixture (``topics = topics_fixture(N)``): the test's own
    topics, created with ``partitions`` partitions, and every topic a worker made for it
    deleted after it."""

    @pytest.fixture
    def topics(kafka_bootstrap: str, unique_name: str) -> Iterator[Topics]:
        made = Topics(unique_name)
        asyncio.run(create_topics(kafka_bootstrap, made.all, partitions=partitions))
        yield made
        asyncio.run(delete_topics(kafka_bootstrap, made.made))

    return topics


class OwnRedis:
    """A throwaway redis-server of one test on 127.0.0.1 (``port``, else a free one) that
    persists every write (append-only file, fsync always), so a restart brings the
    indicators back as a real one does."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("own redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    n = 0
    try:
        futures = []
        for key, value in records:
            futures.append(await producer.send(topic, value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


@dataclass
class Read:
    key: bytes | None
    value: bytes
    partition: int
    offset: int

    def json(self) -> dict[str, object]:
        data = orjson.loads(self.value)
        assert isinstance(data, dict)
        return data


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Read]], bool],
    within: float = 60.0,
) -> list[Read]:
    """Read ``topic`` from the beginning until ``until(records)`` holds, for ``within`` s."""
    # no group: every partition, from the beginning, nothing committed
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Read] = []
    try:
        deadline = time.monotonic() + within
        while not until(out) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batch.values():
                out.extend(Read(r.key, r.value or b"", r.partition, r.offset) for r in records)
    finally:
        await consumer.stop()
    return out


@dataclass
class WorkerProcess:
    """One ``scamwatch worker`` subprocess of a test."""

    topics: Topics
    redis_prefix: str
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    data_path: str = "inline"
    web_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            {
                "SCAMWATCH_TOPIC_CALLS": self.topics.calls,
                "SCAMWATCH_TOPIC_WEB": self.topics.web,
                "SCAMWATCH_TOPIC_ALERTS": self.topics.alerts,
                "SCAMWATCH_TOPIC_DEADLETTER": self.topics.deadletter,
                "SCAMWATCH_TOPIC_SIGHTINGS": self.topics.sightings,
                "SCAMWATCH_DATA_PATH": self.data_path,
                "SCAMWATCH_APP_ID": self.topics.app_id,
                "SCAMWATCH_REDIS_PREFIX": self.redis_prefix,
                "SCAMWATCH_METRICS_BIND": "127.0.0.1",
                "SCAMWATCH_WEB_BIND": "127.0.0.1",
                "SCAMWATCH_STATE_DIR": str(self.state_dir),
                "SCAMWATCH_COMMIT_INTERVAL_SECONDS": "0.5",
                # a SIGKILLed member's partitions move after this (the default 30 s is slow)
                "SCAMWATCH_SESSION_TIMEOUT_SECONDS": "8",
                # the tests expect one alert per matched event unless they test suppression
                "SCAMWATCH_SUPPRESS_SECONDS": "0",
            }
        )
        env.update(self.extra_env)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / f"worker-{self.web_port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                SCAMWATCH,
                "worker",
                "--web-port",
                str(self.web_port),
                "--metrics-port",
                str(self.metrics_port),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def metrics(self) -> MetricsScrape:
        return scrape_metrics(self.metrics_port)

    def wait_metric(
        self, check: Callable[[MetricsScrape], bool], timeout: float = 60.0
    ) -> MetricsScrape:
        """Scrape until ``check`` holds; fails with the log tail when it does not in time."""
        deadline = time.monotonic() + timeout
        last: MetricsScrape | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                last = self.metrics()
            except OSError:
                last = None
            if last is not None and check(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"metric condition not met in {timeout} s:\n{self.log_tail()}")

    def wait_assigned(self, timeout: float = 60.0) -> MetricsScrape:
        got = self.wait_metric(lambda m: m.get("scamwatch_assigned_partitions", 0) > 0, timeout)
        # the data path asked for is the one running (a worker may fall back to agents)
        assert f"data path: {self.data_path}" in self.log_tail(400), self.log_tail()
        return got

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the worker and wait for it to exit (SIGKILL after ``timeout``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def call_event(
    i: int,
    *,
    callee: str,
    caller: str = "+12025550100",
    partner: str = "p1",
    ts_ms: int | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"c{i}",
            "ts": int(time.time() * 1000) if ts_ms is None else ts_ms,
            "partner_id": partner,
            "caller": caller,
            "callee": callee,
            "subscriber_id": f"s{i % 97}",
        }
    )


def web_event(i: int, *, host: str, partner: str = "p1") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"w{i}",
            "ts": int(time.time() * 1000),
            "partner_id": partner,
            "host": host,
            "subscriber_id": f"s{i % 97}",
        }
    )


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> dict[str, int]:
    """Per input partition, end offset minus the group's committed offset (0: all committed)."""
    from aiokafka import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = []
        for info in await admin.describe_topics(list(topics)):
            parts = sorted(p["partition"] for p in info["partitions"])
            tps.extend(TopicPartition(info["topic"], p) for p in parts)
        ends = await consumer.end_offsets(tps)
        lag: dict[str, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[f"{tp.topic}:{tp.partition}"] = ends[tp] - done
        return lag
    finally:
        await consumer.stop()
        await admin.close()
