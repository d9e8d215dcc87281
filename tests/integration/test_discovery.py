"""The ``discover`` agent on the real Kafka and Redis, on both data paths: sighting.v1 records
produced straight to the test's own sightings topic; a number is discovered at
SCAMWATCH_DISCOVERY_MIN_SUBSCRIBERS distinct subscribers and not below, once per window; an
allowlisted number never is."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka.partitioner import DefaultPartitioner

from engine.core.models import Indicator, IndicatorType
from engine.core.records import Sighting
from engine.core.timestamps import format_rfc3339
from engine.devtools.schemas import validate
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Read,
    Topics,
    WorkerProcess,
    create_topics,
    delete_topics,
    group_lag,
    produce,
    read_topic,
)

ALLOWLISTED = "+18006427676"  # a genuine support line


@dataclass
class Stack:
    worker: WorkerProcess
    topics: Topics
    store: RedisStore
    bootstrap: str


def sighting(
    number: str, subscriber: str, i: int, partner: str = "p1", *, ts_ms: int | None = None
) -> tuple[bytes, bytes]:
    record = Sighting(
        number=number,
        kind="call",
        partner_id=partner,
        subscriber_id=subscriber,
        event_id=f"e-{number}-{subscriber}-{i}",
        ts=format_rfc3339(int(time.time() * 1000) if ts_ms is None else ts_ms),
        exposure=f"exposure-{subscriber}",
    )
    return record.key, record.to_json()


def new_number() -> str:
    return f"+1888{uuid.uuid4().int % 10_000_000:07d}"


@pytest.fixture(scope="module", params=DATA_PATHS)
def stack(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    topics = Topics(f"test-{uuid.uuid4().hex[:12]}")
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    asyncio.run(create_topics(kafka_bootstrap, topics.all, partitions=2))
    store = RedisStore.from_url(redis_url, prefix=prefix)
    store.upsert([Indicator(IndicatorType.PHONE, ALLOWLISTED, sources=("test",))], allowlist=True)
    worker = WorkerProcess(
        topics, prefix, tmp_path_factory.mktemp("worker"), data_path=request.param
    ).start()
    try:
        worker.wait_assigned()
        yield Stack(worker, topics, store, kafka_bootstrap)
    finally:
        worker.kill()
        asyncio.run(delete_topics(kafka_bootstrap, topics.made))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def send(stack: Stack, records: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(produce(stack.bootstrap, stack.topics.sightings, records))


def wait_committed(stack: Stack, within: float = 60.0) -> None:
    """Until every sighting produced so far is committed by the worker's group (processed)."""
    deadline = time.monotonic() + within
    topics = [stack.topics.sightings]
    while time.monotonic() < deadline:
        lag = asyncio.run(group_lag(stack.bootstrap, stack.topics.app_id, topics))
        if lag and all(n == 0 for n in lag.values()):
            return
        time.sleep(0.3)
    raise AssertionError(f"sightings not committed in {within} s:\n{stack.worker.log_tail()}")


def discoveries(stack: Stack, number: str, *, at_least: int = 0) -> list[Read]:
    def of_number(records: list[Read]) -> list[Read]:
        return [r for r in records if (r.json().get("discovery") or {}).get("number") == number]  # type: ignore[attr-defined]

    got = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda rs: len(of_number(rs)) >= max(at_least, 1),
            within=60.0 if at_least else 3.0,
        )
    )
    return of_number(got)


def test_discovered_at_the_threshold_and_not_below(stack: Stack) -> None:
    number = new_number()
    # two subscribers, one of them twice: below the threshold of 3
    send(stack, [sighting(number, "s1", 0), sighting(number, "s2", 1), sighting(number, "s1", 2)])
    wait_committed(stack)
    assert discoveries(stack, number) == []

    send(stack, [sighting(number, "s3", 3)])
    (alert,) = discoveries(stack, number, at_least=1)
    doc = alert.json()
    validate("alert.v1", doc)
    assert doc["rule"] == "discovered_scam_number" and doc["severity"] == "high"
    assert doc["event_id"] == f"e-{number}-s3-3"
    assert doc["discovery"]["subscribers"] == 3  # type: ignore[index]
    assert doc["discovery"]["window_s"] == 86_400  # type: ignore[index]
    assert doc["source"]["topic"] == stack.topics.sightings  # type: ignore[index]

    # more subscribers in the same window: no second alert
    send(stack, [sighting(number, "s4", 4), sighting(number, "s5", 5)])
    wait_committed(stack)
    assert len(discoveries(stack, number, at_least=1)) == 1
    assert stack.worker.metrics().total("scamwatch_discovered_total") >= 1
    # alert mode: no indicator
    assert stack.store.get(IndicatorType.PHONE, number) is None


def test_a_burst_of_sightings_is_written_to_the_table_without_flush_stalls(stack: Stack) -> None:
    # every sighting of a new number is a table write, so a changelog record: Faust's
    # default buffer of 100 had its Conductor flush and warn "producer buffer full" over and
    # over under such a burst (engine.stream.discover.CHANGELOG_BUFFER_MESSAGES)
    burst = [sighting(new_number(), "s1", i) for i in range(5000)]
    send(stack, burst)
    wait_committed(stack)
    assert stack.worker.log_path is not None
    log = stack.worker.log_path.read_text(errors="replace")
    assert "producer buffer full" not in log, stack.worker.log_tail()


def test_an_allowlisted_number_is_never_discovered(stack: Stack) -> None:
    send(stack, [sighting(ALLOWLISTED, f"a{i}", i) for i in range(5)])
    wait_committed(stack)
    assert discoveries(stack, ALLOWLISTED) == []
    skipped = stack.worker.metrics().total(
        "scamwatch_sightings_skipped_total", reason="allowlisted"
    )
    assert skipped >= 5


@pytest.fixture
def own_stack(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[[str, str], Stack]]:
    """Starts a worker of its own (topics, group, Redis prefix) with SCAMWATCH_DISCOVERY set."""
    made: list[tuple[Stack, str]] = []

    def start(mode: str, data_path: str) -> Stack:
        topics = Topics(f"test-{uuid.uuid4().hex[:12]}")
        prefix = f"test:{uuid.uuid4().hex[:12]}:"
        asyncio.run(create_topics(kafka_bootstrap, topics.all, partitions=2))
        store = RedisStore.from_url(redis_url, prefix=prefix)
        worker = WorkerProcess(
            topics,
            prefix,
            tmp_path / topics.base,
            extra_env={"SCAMWATCH_DISCOVERY": mode},
            data_path=data_path,
        )
        stack = Stack(worker, topics, store, kafka_bootstrap)
        made.append((stack, prefix))
        worker.start().wait_assigned()
        return stack

    yield start
    for stack, prefix in made:
        stack.worker.kill()
        asyncio.run(delete_topics(kafka_bootstrap, stack.topics.made))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def call_to(number: str, i: int) -> tuple[bytes, bytes]:
    doc = {
        "event_id": f"call-{i}",
        "ts": int(time.time() * 1000),
        "partner_id": "p1",
        "caller": "+12025550100",
        "callee": number,
        "subscriber_id": f"later-{i}",
    }
    return b"p1:later", orjson.dumps(doc)


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_indicator_mode_adds_the_number_and_every_call_to_it_alerts(
    own_stack: Callable[[str, str], Stack], data_path: str
) -> None:
    stack = own_stack("indicator", data_path)
    number = new_number()
    before = int(time.time() * 1000)
    send(stack, [sighting(number, f"s{i}", i) for i in range(3)])
    (alert,) = discoveries(stack, number, at_least=1)
    ind = stack.store.get(IndicatorType.PHONE, number)
    assert ind is not None, stack.worker.log_tail()
    assert ind.sources == ("scamwatch-discovery",) and ind.tags == ("discovered",)
    assert ind.confidence == 60
    assert ind.valid_until is not None
    ttl_ms = 864_000_000
    assert before + ttl_ms <= ind.valid_until <= int(time.time() * 1000) + ttl_ms
    assert alert.json()["matches"][0]["indicator"]["sources"] == ["scamwatch-discovery"]  # type: ignore[index]

    # the worker follows the store: a later call to the number alerts as a known scam number
    version = stack.store.version()
    stack.worker.wait_metric(lambda m: m.total("scamwatch_indicator_version") >= version)
    asyncio.run(produce(stack.bootstrap, stack.topics.calls, [call_to(number, 1)]))

    def callee_alerts(records: list[Read]) -> list[dict[str, object]]:
        docs = [r.json() for r in records]
        return [d for d in docs if d["rule"] == "callee_scam_number"]

    got = asyncio.run(
        read_topic(stack.bootstrap, stack.topics.alerts, until=lambda rs: bool(callee_alerts(rs)))
    )
    (hit,) = callee_alerts(got)
    assert hit["matches"][0]["indicator"]["sources"] == ["scamwatch-discovery"]  # type: ignore[index]


def test_off_runs_no_agent(own_stack: Callable[[str, str], Stack]) -> None:
    stack = own_stack("off", "inline")
    number = new_number()
    send(stack, [sighting(number, f"s{i}", i) for i in range(4)])
    # the worker is up and matching: a clean call is processed
    asyncio.run(produce(stack.bootstrap, stack.topics.calls, [call_to(new_number(), 2)]))
    stack.worker.wait_metric(lambda m: m.total("scamwatch_events_total") >= 1)
    assert discoveries(stack, number) == []
    lag = asyncio.run(group_lag(stack.bootstrap, stack.topics.app_id, [stack.topics.sightings]))
    assert sum(lag.values()) == 4  # nothing consumed them


def discovered_numbers(stack: Stack, numbers: list[str], within: float) -> dict[str, int]:
    """How many discoveries each of ``numbers`` has, reading until each has one (or time)."""

    def counts(records: list[Read]) -> dict[str, int]:
        out = dict.fromkeys(numbers, 0)
        for r in records:
            number = (r.json().get("discovery") or {}).get("number")  # type: ignore[attr-defined]
            if number in out:
                out[number] += 1
        return out

    got = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda rs: all(counts(rs).values()),
            within=within,
        )
    )
    time.sleep(2)  # a second alert for a number would be written right after the first
    again = asyncio.run(
        read_topic(stack.bootstrap, stack.topics.alerts, until=lambda rs: len(rs) >= len(got))
    )
    return counts(again)


def wait_settled(*workers: WorkerProcess, within: float = 90.0) -> None:
    """Until each worker's Faust recovery finished after its latest assignment ("Worker
    ready" after the last "Setting newly assigned partitions"). These tests are about the
    table, so they send once the group has settled (what a rebalance does to the sightings
    in flight is the scale-out tests' and engine.stream.app.ScamwatchApp's)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        texts = [w.log_path.read_text(errors="replace") if w.log_path else "" for w in workers]
        if all(
            t.rfind("Worker ready") > t.rfind("Setting newly assigned partitions") >= 0
            for t in texts
        ):
            return
        time.sleep(0.3)
    raise AssertionError("the group did not settle:\n" + "\n".join(w.log_tail() for w in workers))


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_the_table_survives_a_sigkill_of_its_worker(
    own_stack: Callable[[str, str], Stack], data_path: str, tmp_path: Path
) -> None:
    stack = own_stack("alert", data_path)
    below = [new_number() for _ in range(4)]  # two subscribers each: not discovered yet
    done = new_number()  # discovered before the kill
    send(stack, [sighting(n, f"s{i}", i) for n in below for i in range(2)])
    send(stack, [sighting(done, f"s{i}", i) for i in range(3)])
    assert discovered_numbers(stack, [done], within=60) == {done: 1}
    wait_committed(stack)
    stack.worker.stop(signal.SIGKILL)

    # a new worker in the group (its own state dir) takes the partitions over
    after = WorkerProcess(
        stack.topics,
        stack.worker.redis_prefix,
        tmp_path / "after",
        extra_env=stack.worker.extra_env,
        data_path=data_path,
    )
    stack.worker = after
    after.start().wait_assigned(timeout=90)
    wait_settled(after)
    # one more subscriber each: the two before the kill were remembered
    send(stack, [sighting(n, "s9", 9) for n in [*below, done]])
    got = discovered_numbers(stack, [*below, done], within=90)
    assert got == {**dict.fromkeys(below, 1), done: 1}, after.log_tail()
    first = discoveries(stack, below[0], at_least=1)[0].json()
    assert first["discovery"]["subscribers"] == 3  # type: ignore[index]


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_the_table_survives_a_rebalance(
    own_stack: Callable[[str, str], Stack], data_path: str, tmp_path: Path
) -> None:
    stack = own_stack("alert", data_path)
    numbers = [new_number() for _ in range(6)]  # over both partitions of sightings
    send(stack, [sighting(n, f"s{i}", i) for n in numbers for i in range(2)])
    wait_committed(stack)

    # a second worker joins: the partitions are shared out between the two
    second = WorkerProcess(
        stack.topics,
        stack.worker.redis_prefix,
        tmp_path / "second",
        extra_env=stack.worker.extra_env,
        data_path=data_path,
    ).start()
    try:
        second.wait_assigned(timeout=90)
        wait_settled(stack.worker, second)
        send(stack, [sighting(n, "s9", 9) for n in numbers])
        got = discovered_numbers(stack, numbers, within=90)
        assert got == dict.fromkeys(numbers, 1), second.log_tail()
        # the partitions were shared: each worker discovered numbers of its table partition
        for worker in (stack.worker, second):
            assert "discovered +" in worker.log_tail(2000), worker.log_tail()
    finally:
        second.kill()


def numbers_of_one_partition(count: int, partitions: int = 2) -> list[str]:
    """``count`` new numbers whose sightings (keyed by the number, the producer's default
    partitioner) all land in the same partition of ``sightings``."""
    every = list(range(partitions))
    numbers = [new_number()]
    target = DefaultPartitioner()(numbers[0].encode(), every, every)
    while len(numbers) < count:
        number = new_number()
        if DefaultPartitioner()(number.encode(), every, every) == target:
            numbers.append(number)
    return numbers


def test_numbers_never_sighted_again_expire_from_the_table(
    own_stack: Callable[[str, str], Stack], tmp_path: Path
) -> None:
    """A number last sighted a discovery window before the newest sighting of its partition
    is deleted from the table (a tombstone on the changelog), whether this worker wrote it
    or recovered it from the changelog after a SIGKILL; a number within the window is kept."""
    stack = own_stack("alert", "inline")
    recovered, written, kept, fresh = numbers_of_one_partition(4)
    now = int(time.time() * 1000)
    day = 86_400_000
    send(stack, [sighting(recovered, "s1", 0, ts_ms=now - 2 * day)])
    wait_committed(stack)
    stack.worker.stop(signal.SIGKILL)
    after = WorkerProcess(
        stack.topics,
        stack.worker.redis_prefix,
        tmp_path / "after",
        extra_env=stack.worker.extra_env,
        data_path="inline",
    )
    stack.worker = after
    after.start().wait_assigned(timeout=90)
    wait_settled(after)
    # in order, in one partition: `written` (3 days old) is stored by this worker; `kept`
    # (an hour old) moves the partition's clock on: `recovered` and `written` are a window
    # behind it, dropped; `fresh` sweeps again, and `kept` is within the window
    send(
        stack,
        [
            sighting(written, "s1", 1, ts_ms=now - 3 * day),
            sighting(kept, "s1", 2, ts_ms=now - 3_600_000),
            sighting(fresh, "s1", 3, ts_ms=now),
        ],
    )
    wait_committed(stack)
    changelog = f"{stack.topics.app_id}-scamwatch-discovery-changelog"

    def tombstones(records: list[Read]) -> dict[str, int]:
        return {r.key.decode(): r.partition for r in records if r.key and r.value == b""}

    got = asyncio.run(
        read_topic(
            stack.bootstrap,
            changelog,
            until=lambda rs: {recovered, written} <= set(tombstones(rs)),
            within=30.0,
        )
    )
    dropped = tombstones(got)
    assert set(dropped) == {recovered, written}, after.log_tail()
    # each tombstone in the partition its number's entries were written to
    written_to = {r.key.decode(): r.partition for r in got if r.key and r.value}
    assert dropped == {n: written_to[n] for n in (recovered, written)}
    assert {kept, fresh} <= set(written_to)
    after.wait_metric(lambda m: m.total("scamwatch_discovery_expired_total") >= 2)
