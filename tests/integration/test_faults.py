"""Faults on real processes on loopback: a 3-broker KRaft cluster of the module's own
(`scamwatch stack up --brokers 3`, own ports and SCAMWATCH_STATE_DIR, topics RF 3 and
min.insync.replicas 2), real workers, a steady stream of inputs produced while the fault
happens. Each test asserts the invariant of DESIGN.md under its fault:

- every input ends as processed or dead-lettered: every input record (read back from the
  input topics, so the producer's own retries count too) is the source of an alert or of a
  dead letter, all inputs are committed, and ``scamwatch_events_total`` summed over the run's
  workers is at least the number of inputs;
- every expected alert is on ``alerts`` at least once, by ``alert_id``;
- no worker dies of the fault, and the matcher never stops matching (no input ends clean:
  every well-formed input is a scam one).

Every input of the stream alerts or is dead-lettered, so each one leaves a timestamped
output: the pauses a fault causes are read from those timestamps. Each test prints one
``fault cost`` line (pause, restart to processing again, duplicate alerts, inputs
reprocessed); README "Faults and what they cost" holds the measured numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from engine.core.alerts import alert_id
from engine.core.models import Indicator, IndicatorType, Rule, Stream
from engine.devtools import stack
from engine.settings import Settings, load_settings
from engine.store.redis import RedisStore
from tests.integration.worker_support import OwnRedis, Topics, WorkerProcess, group_lag

pytestmark = pytest.mark.stack

PARTITIONS = 3  # per topic: with 3 brokers, each leads some partition
REPLICATION = 3
SCAM_NUMBER = "+18005550199"
LATE_NUMBER = "+18885550123"  # loaded while the test runs (the Redis fault)
SCAM_DOMAIN = "evil-support.example"
RATE = 100  # inputs a second
TICK_S = 0.1
OUTAGE_S = 20.0  # all brokers down this long
DEADLINE_S = 120.0  # any one wait of these tests (the machine is shared and slow)
PARTNER = "p-faults"


# ------------------------------------------------------------------------------ the cluster


def _ports_free(ports: range) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _pick_ports() -> tuple[int, int]:
    """A base port with 6 free after it (3 brokers, 3 controllers) and a Redis port, below
    the kernel's ephemeral range (so no test's free_port() takes them meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(21000, 31000, 10)
        if _ports_free(range(base, base + 7)):
            return base, base + 6
    raise AssertionError("no 7 consecutive free ports between 21000 and 31000")


@dataclass
class Cluster:
    """The module's 3-broker cluster and its Redis, driven through `scamwatch stack`."""

    env: dict[str, str]
    state: Path
    bootstrap: str  # every broker's address
    redis_url: str
    settings: Settings

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "stack", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"stack {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def stop_broker(self, broker: int) -> None:
        assert f"stopped: kafka-{broker}" in self.run("down", "--broker", str(broker)).stdout

    def stop_all_brokers(self) -> None:
        # all together (`stack down` would take Redis too; one by one waits on lost quorums)
        stopped = stack.stack_down(self.settings, lambda _: None, only=["kafka"])
        assert sorted(stopped) == ["kafka-1", "kafka-2", "kafka-3"], stopped

    def up(self) -> None:
        self.run("up")

    def leader(self, topic: str, partition: int) -> int:
        return asyncio.run(_leader(self.bootstrap, topic, partition))

    def wait_fully_replicated(self, topics: list[str]) -> None:
        """Every partition of ``topics`` (and of the group offsets) has all 3 replicas in
        sync: a broker that came back has caught up, so stopping another keeps 2 in sync."""
        deadline = time.monotonic() + DEADLINE_S
        lagging: list[str] = []
        while time.monotonic() < deadline:
            lagging = asyncio.run(_under_replicated(self.bootstrap, topics))
            if not lagging:
                return
            time.sleep(0.5)
        raise AssertionError(f"partitions still under-replicated: {lagging}")


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    return admin


async def _leader(bootstrap: str, topic: str, partition: int) -> int:
    admin = await _admin(bootstrap)
    try:
        (described,) = await admin.describe_topics([topic])
        return next(
            int(p["leader"]) for p in described["partitions"] if p["partition"] == partition
        )
    finally:
        await admin.close()


async def _under_replicated(bootstrap: str, topics: list[str]) -> list[str]:
    admin = await _admin(bootstrap)
    try:
        described = await admin.describe_topics([*topics, "__consumer_offsets"])
    finally:
        await admin.close()
    return [
        f"{t['topic']}:{p['partition']} isr={p['isr']}"
        for t in described
        for p in t["partitions"]
        if len(p["isr"]) < REPLICATION
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("faults") / "state"
    kafka_port, redis_port = _pick_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
    env |= {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "SCAMWATCH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SCAMWATCH_STATE_DIR": str(state),
        "COLUMNS": "200",
    }
    settings = load_settings(
        kafka={"bootstrap": env["SCAMWATCH_KAFKA_BOOTSTRAP"]},
        redis={"url": env["SCAMWATCH_REDIS_URL"]},
        stack={"state_dir": str(state), "cache_dir": env["SCAMWATCH_CACHE_DIR"]},
    )
    bootstrap = ",".join(f"127.0.0.1:{kafka_port + i}" for i in range(3))
    made = Cluster(env, state, bootstrap, env["SCAMWATCH_REDIS_URL"], settings)
    # this process's producers and admin clients log every refused connection of a fault
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        made.run("up", "--brokers", "3")
        yield made
    finally:
        quiet.setLevel(level)
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "stack", "down"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


# ---------------------------------------------------------------------------- one test's run


def _call(i: int, callee: str) -> bytes:
    # no subscriber_id: never suppressed, exposes no one (one alert per scam input)
    return orjson.dumps(
        {
            "event_id": f"c{i}",
            "ts": int(time.time() * 1000),
            "partner_id": PARTNER,
            "caller": "+12025550100",
            "callee": callee,
        }
    )


def _web(i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"w{i}",
            "ts": int(time.time() * 1000),
            "partner_id": PARTNER,
            "host": f"x{i % 7}.{SCAM_DOMAIN}",
        }
    )


class TrafficStream:
    """Produces RATE inputs a second to ``calls`` and ``web`` until stopped: scam calls and
    scam web events, every 10th not JSON. A chunk the cluster does not acknowledge is sent
    again (duplicates are fine: the inputs are read back from the topics at the end)."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.callee = SCAM_NUMBER  # the test may switch to a number loaded meanwhile
        self.acked = 0
        self.retries = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> TrafficStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=DEADLINE_S)
        assert not self._thread.is_alive(), "the traffic producer did not finish"
        if self._error is not None:
            raise AssertionError(f"the traffic producer failed: {self._error!r}")

    def _chunk(self, start: int, n: int) -> list[tuple[str, bytes, bytes]]:
        out = []
        for i in range(start, start + n):
            key = f"{PARTNER}:k{i % 31}".encode()
            topic = self.topics.calls if i % 2 else self.topics.web
            if i % 10 == 9:
                value = b'{"event_id": "bad-%d", oops' % i
            elif topic == self.topics.calls:
                value = _call(i, self.callee)
            else:
                value = _web(i)
            out.append((topic, key, value))
        return out

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by stop()
            self._error = exc

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",  # not idempotent: aiokafka's loses its sequence when batches expire
            linger_ms=5,
            request_timeout_ms=15_000,
            retry_backoff_ms=200,
        )
        await producer.start()
        try:
            i = 0
            per_tick = int(RATE * TICK_S)
            next_tick = time.monotonic()
            while not self._stop.is_set():
                chunk = self._chunk(i, per_tick)
                give_up = time.monotonic() + DEADLINE_S
                while True:
                    try:
                        futures = [await producer.send(t, v, key=k) for t, k, v in chunk]
                        await asyncio.gather(*futures)
                        break
                    except KafkaError:
                        if time.monotonic() > give_up:
                            raise
                        self.retries += 1
                        await asyncio.sleep(0.5)
                self.acked += len(chunk)
                i += per_tick
                next_tick = max(next_tick + TICK_S, time.monotonic())  # no burst after a stall
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        finally:
            await producer.stop()


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes

    def json(self) -> dict[str, object]:
        data = orjson.loads(self.value)
        assert isinstance(data, dict)
        return data


async def _read_to_end(bootstrap: str, topics: list[str]) -> list[Record]:
    """Every record of ``topics`` up to their end offsets now (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + DEADLINE_S
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            assert time.monotonic() < deadline, f"could not read {sorted(left)} to their end"
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                out.extend(
                    Record(tp.topic, tp.partition, r.offset, r.value or b"")
                    for r in records
                    if r.offset < ends[tp]
                )
                if records and records[-1].offset >= ends[tp] - 1:
                    left.discard(tp)
        return out
    finally:
        await consumer.stop()


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = await _admin(bootstrap)
    try:
        await admin.create_topics(
            [
                NewTopic(
                    n,
                    num_partitions=PARTITIONS,
                    replication_factor=REPLICATION,
                    topic_configs={"min.insync.replicas": "2"},
                )
                for n in names
            ]
        )
    finally:
        await admin.close()


async def _committed(bootstrap: str, group: str, topics: list[str]) -> int:
    """The offsets ``group`` committed on ``topics``, summed (fresh topics: records done)."""
    admin = await _admin(bootstrap)
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(
        meta.offset for tp, meta in offsets.items() if tp.topic in topics and meta.offset > 0
    )


def _epoch(rfc3339: object) -> float:
    return datetime.fromisoformat(str(rfc3339)).timestamp()


@dataclass
class Run:
    """One test's topics, workers, stream and measurements."""

    cluster: Cluster
    topics: Topics
    redis_url: str
    redis_prefix: str
    state: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    # a SIGKILLed worker's count: max(its last scrape, what its group had committed)
    killed_counts: list[float] = field(default_factory=list)
    stream: TrafficStream | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.topics.calls, self.topics.web]

    def worker(self, name: str, **env: str) -> WorkerProcess:
        w = WorkerProcess(
            self.topics,
            self.redis_prefix,
            self.state / name,
            extra_env={
                "SCAMWATCH_KAFKA_BOOTSTRAP": self.cluster.bootstrap,
                "SCAMWATCH_REDIS_URL": self.redis_url,
                "SCAMWATCH_TOPIC_PARTITIONS": str(PARTITIONS),
                "SCAMWATCH_TOPIC_REPLICATION": str(REPLICATION),
                **env,
            },
        ).start()
        self.workers.append(w)
        return w

    def start_stream(self) -> TrafficStream:
        self.stream = TrafficStream(self.cluster.bootstrap, self.topics).start()
        return self.stream

    def processed(self) -> float:
        """Inputs processed so far by the live workers (a stopped one keeps its last count)."""
        return sum(self._last.get(id(w), 0.0) for w in self.workers) + sum(self.killed_counts)

    _last: dict[int, float] = field(default_factory=dict)

    def _scrape(self) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self._last[id(w)] = w.metrics().total("scamwatch_events_total")

    def wait_processed(self, more_than: float, what: str) -> float:
        """Until the workers together processed more than ``more_than`` inputs."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self._assert_alive()
            self._scrape()
            if self.processed() > more_than:
                return self.processed()
            time.sleep(0.2)
        raise AssertionError(f"{what}: no progress past {more_than}\n{self._tails()}")

    def kill(self, w: WorkerProcess) -> None:
        """SIGKILL ``w`` and keep what it is known to have processed."""
        self._scrape()
        last = self._last.pop(id(w), 0.0)
        w.stop(signal.SIGKILL)
        self.workers.remove(w)
        done = asyncio.run(_committed(self.cluster.bootstrap, self.topics.app_id, self.inputs))
        # commits follow processing: it processed at least what is committed
        self.killed_counts.append(max(last, float(done)))

    def leave(self, w: WorkerProcess) -> None:
        """SIGTERM ``w`` (it commits and leaves the group) and keep its count: the one it
        logs as it stops (it goes on handling records after the last scrape)."""
        self._scrape()
        assert w.stop(signal.SIGTERM) == 0, w.log_tail()
        final = re.search(r"worker stopped: (\d+) input records processed", w.log_tail(200))
        assert final is not None, f"no final count in the log of the worker:\n{w.log_tail()}"
        last = self._last.pop(id(w), 0.0)
        assert int(final[1]) >= last, (final[0], last)
        self.killed_counts.append(float(final[1]))
        self.workers.remove(w)

    def _assert_alive(self) -> None:
        for w in self.workers:
            assert w.proc is not None
            if w.proc.poll() is not None:
                raise AssertionError(f"a worker exited {w.proc.returncode}:\n{w.log_tail(80)}")

    def _tails(self) -> str:
        return "\n---\n".join(w.log_tail(60) for w in self.workers)

    def settle(self, fault: str, restarted_at: float) -> dict[str, object]:
        """Stop the stream, let the workers finish, check the invariant; the fault's cost."""
        assert self.stream is not None
        self.stream.stop()
        bootstrap = self.cluster.bootstrap
        inputs = asyncio.run(_read_to_end(bootstrap, self.inputs))
        assert len(inputs) >= self.stream.acked > 0
        deadline = time.monotonic() + DEADLINE_S
        lag: dict[str, int] = {}
        while time.monotonic() < deadline:
            self._assert_alive()
            lag = asyncio.run(group_lag(bootstrap, self.topics.app_id, self.inputs))
            if lag and not any(lag.values()):
                break
            time.sleep(0.5)
        assert lag and not any(lag.values()), f"inputs not all committed: {lag}\n{self._tails()}"
        self._assert_alive()
        self._scrape()

        alerts = asyncio.run(_read_to_end(bootstrap, [self.topics.alerts]))
        dead = asyncio.run(_read_to_end(bootstrap, [self.topics.deadletter]))
        outputs: dict[tuple[str, int, int], list[float]] = defaultdict(list)
        alert_ids: Counter[str] = Counter()
        for rec in alerts:
            a = rec.json()
            src = a["source"]
            assert isinstance(src, dict)
            outputs[(src["topic"], src["partition"], src["offset"])].append(_epoch(a["ts"]))
            alert_ids[str(a["alert_id"])] += 1
        for rec in dead:
            d = rec.json()
            src = d["source"]
            assert isinstance(src, dict)
            assert d["reason"] == "invalid_json", d
            outputs[(src["topic"], src["partition"], src["offset"])].append(_epoch(d["ts"]))

        expected: set[str] = set()
        bad = 0
        for rec in inputs:
            try:
                event = rec.json()
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if rec.topic == self.topics.calls:
                expected.add(
                    alert_id(
                        Stream.CALLS,
                        PARTNER,
                        str(event["event_id"]),
                        Rule.CALLEE_SCAM_NUMBER,
                        IndicatorType.PHONE,
                        str(event["callee"]),
                    )
                )
            else:
                expected.add(
                    alert_id(
                        Stream.WEB,
                        PARTNER,
                        str(event["event_id"]),
                        Rule.HOST_SCAM_DOMAIN,
                        IndicatorType.DOMAIN,
                        SCAM_DOMAIN,
                    )
                )
        # every input ends as processed (its alert) or dead-lettered
        unaccounted = [
            (r.topic, r.partition, r.offset)
            for r in inputs
            if (r.topic, r.partition, r.offset) not in outputs
        ]
        assert not unaccounted, f"{len(unaccounted)} inputs with no output: {unaccounted[:10]}"
        missing = expected - alert_ids.keys()
        assert not missing, f"{len(missing)} of {len(expected)} expected alerts missing"
        counted = self.processed()
        assert counted >= len(inputs), (counted, len(inputs))
        clean = sum(
            w.metrics().total("scamwatch_events_total", outcome="clean") for w in self.workers
        )
        assert clean == 0, f"{clean} scam inputs ended clean: the matcher lost its indicators"

        # what it cost: per input partition, the longest wait between consecutive inputs'
        # first outputs, and the first output after the restart
        first = {src: min(ts) for src, ts in outputs.items()}
        by_partition: dict[tuple[str, int], list[float]] = defaultdict(list)
        for (topic, partition, _), ts in first.items():
            by_partition[(topic, partition)].append(ts)
        pause = max(
            (
                b - a
                for times in by_partition.values()
                for a, b in itertools.pairwise(sorted(times))
            ),
            default=0.0,
        )
        after = [
            min((t for t in ts if t >= restarted_at), default=None) for ts in by_partition.values()
        ]
        back = max((t - restarted_at for t in after if t is not None), default=float("nan"))
        cost: dict[str, object] = {
            "fault": fault,
            "inputs": len(inputs),
            "dead_lettered": bad,
            "pause_s": round(pause, 2),
            "restart_to_processing_s": round(back, 2),
            "duplicate_alerts": sum(alert_ids.values()) - len(alert_ids),
            "inputs_reprocessed": sum(1 for ts in outputs.values() if len(ts) > 1),
            "producer_retries": self.stream.retries,
        }
        print(f"\nfault cost: {orjson.dumps(cost).decode()}")
        return cost


@pytest.fixture
def run(cluster: Cluster, tmp_path: Path) -> Iterator[Run]:
    cluster.up()  # a broker a failed test left down comes back
    base = f"faults-{os.urandom(6).hex()}"
    topics = Topics(base)
    asyncio.run(_create_topics(cluster.bootstrap, topics.all))
    cluster.wait_fully_replicated(topics.all)
    prefix = f"test:{base}:"
    made = Run(cluster, topics, cluster.redis_url, prefix, tmp_path)
    try:
        yield made
    finally:
        if made.stream is not None and made.stream._thread.is_alive():
            with contextlib.suppress(AssertionError):
                made.stream.stop()
        for w in made.workers:
            w.kill()


def _load(url: str, prefix: str, *numbers: str) -> None:
    store = RedisStore.from_url(url, prefix=prefix)
    try:
        store.upsert(
            [Indicator(IndicatorType.PHONE, n, sources=("faults",)) for n in numbers]
            + [Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("faults",))]
        )
    finally:
        store.close()


def _assigned(worker: WorkerProcess) -> float:
    try:
        return worker.metrics().get("scamwatch_assigned_partitions", 0)
    except OSError:  # its /metrics is not up yet
        return 0


def _steady(run: Run, worker: WorkerProcess, inputs: int = 300) -> float:
    """Until the stream flows through ``worker``: it processed ``inputs`` inputs."""
    worker.wait_assigned(DEADLINE_S)
    run.start_stream()
    return run.wait_processed(inputs, "before the fault")


# ---------------------------------------------------------------------------------- faults


def test_partition_leader_stopped_mid_stream_then_started(run: Run) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    worker = run.worker("w1")
    before = _steady(run, worker)
    leader = run.cluster.leader(run.topics.calls, 0)
    run.cluster.stop_broker(leader)
    # the partitions it led move to a follower; the worker goes on
    during = run.wait_processed(before + 300, "with the leader down")
    restarted = time.time()
    run.cluster.up()
    run.wait_processed(during + 300, "after the leader came back")
    cost = run.settle(
        f"leader of the input partition (broker {leader}) stopped, started", restarted
    )
    assert cost["inputs"] > 900


def test_all_brokers_stopped_for_20_s_mid_stream_then_started(run: Run) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    worker = run.worker("w1")
    before = _steady(run, worker)
    run.cluster.stop_all_brokers()
    stopped = time.monotonic()
    time.sleep(OUTAGE_S)  # the outage itself, not a wait for something
    restarted = time.time()
    run.cluster.up()
    assert time.monotonic() - stopped >= OUTAGE_S
    run.wait_processed(before + 300, "after the brokers came back")
    run.settle("all 3 brokers stopped for 20 s, started", restarted)


def test_worker_sigkilled_while_a_broker_is_down(run: Run) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    first = run.worker("w1")
    before = _steady(run, first)
    leader = run.cluster.leader(run.topics.calls, 0)
    run.cluster.stop_broker(leader)
    run.wait_processed(before + 200, "with a broker down")
    run.kill(first)
    killed = time.time()
    second = run.worker("w2")  # joins while the broker is still down
    second.wait_metric(lambda m: m.total("scamwatch_events_total") > 0, DEADLINE_S)
    after_kill = run.wait_processed(0, "the new worker, broker still down")
    run.cluster.up()
    run.wait_processed(after_kill + 300, "the new worker, broker back")
    run.settle(f"worker SIGKILLed while broker {leader} down; a new one finishes", killed)
    assert second.metrics().total("scamwatch_events_total") > 0


def test_redis_stopped_and_started_mid_stream(run: Run, tmp_path: Path) -> None:
    own = OwnRedis(tmp_path / "redis", int(run.redis_url.rsplit(":", 1)[1].split("/")[0]) + 1)
    own.start()
    try:
        run.redis_url = own.url
        _load(own.url, run.redis_prefix, SCAM_NUMBER)
        worker = run.worker("w1")
        worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1, DEADLINE_S)
        before = _steady(run, worker)
        own.kill()
        worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 0, DEADLINE_S)
        # matching on the snapshot meanwhile, and saying so once
        run.wait_processed(before + 300, "with Redis down")
        assert worker.log_tail(400).count("indicator store unreachable") == 1
        restarted = time.time()
        own.start()
        worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1, DEADLINE_S)
        resynced = time.time() - restarted
        # resynced: a number loaded now is matched (the stream switches to it)
        _load(own.url, run.redis_prefix, LATE_NUMBER)
        version = RedisStore.from_url(own.url, prefix=run.redis_prefix).version()
        worker.wait_metric(lambda m: m["scamwatch_indicator_version"] == version, DEADLINE_S)
        assert run.stream is not None
        run.stream.callee = LATE_NUMBER
        at_switch = run.processed()
        run.wait_processed(at_switch + 300, "after Redis came back")
        cost = run.settle("Redis (single node) stopped, started", restarted)
        print(f"store up again {resynced:.2f} s after the restart; cost {cost['pause_s']} s")
        assert "indicator store reachable" in worker.log_tail(400)
    finally:
        own.kill()


def test_rebalance_second_worker_joins_then_leaves_mid_stream(run: Run) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    first = run.worker("w1")
    before = _steady(run, first)
    second = run.worker("w2")
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        shares = [_assigned(w) for w in (first, second)]
        if sum(shares) == 2 * PARTITIONS and min(shares) > 0:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the partitions were not shared: {shares}")
    second.wait_metric(lambda m: m.total("scamwatch_events_total") > 0, DEADLINE_S)
    shared = run.wait_processed(before + 300, "two workers")
    left = time.time()
    run.leave(second)
    first.wait_metric(lambda m: m["scamwatch_assigned_partitions"] == 2 * PARTITIONS, DEADLINE_S)
    run.wait_processed(shared + 300, "after the second worker left")
    run.settle("a second worker joins, then leaves", left)
