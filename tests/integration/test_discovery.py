"""The ``discover`` agent on the real Kafka and Redis, on both data paths: sighting.v1 records
produced straight to the test's own sightings topic; a number is discovered at
SCAMWATCH_DISCOVERY_MIN_SUBSCRIBERS distinct subscribers and not below, once per window; an
allowlisted number never is."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

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


def sighting(number: str, subscriber: str, i: int, partner: str = "p1") -> tuple[bytes, bytes]:
    record = Sighting(
        number=number,
        kind="call",
        partner_id=partner,
        subscriber_id=subscriber,
        event_id=f"e-{number}-{subscriber}-{i}",
        ts=format_rfc3339(int(time.time() * 1000)),
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
        changelog = f"{topics.app_id}-scamwatch-discovery-changelog"
        asyncio.run(delete_topics(kafka_bootstrap, [*topics.all, changelog]))
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


def test_an_allowlisted_number_is_never_discovered(stack: Stack) -> None:
    send(stack, [sighting(ALLOWLISTED, f"a{i}", i) for i in range(5)])
    wait_committed(stack)
    assert discoveries(stack, ALLOWLISTED) == []
    skipped = stack.worker.metrics().total(
        "scamwatch_sightings_skipped_total", reason="allowlisted"
    )
    assert skipped >= 5
