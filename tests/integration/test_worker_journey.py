"""Victim journeys, sightings and suppression on the real stack: a journey alert within the
window and none after it, sightings of unknown numbers, suppression counts and the
``suppressed`` field (both data paths), and a journey across two workers whose web and call
events land in partitions owned by different workers."""

from __future__ import annotations

import ast
import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from engine.core.models import Indicator, IndicatorType
from engine.core.records import Sighting
from engine.core.timestamps import format_rfc3339
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Read,
    Topics,
    WorkerProcess,
    create_topics,
    delete_topics,
    read_topic,
)

SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
UNKNOWN = "+18885550123"
WINDOW_S = 1800
SUPPRESS_S = 6


def now_ms() -> int:
    return int(time.time() * 1000)


def web(event_id: str, subscriber: str, ts: int, url: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": ts,
            "partner_id": "p1",
            "url": url or f"https://pop.{SCAM_DOMAIN}/help",
            "subscriber_id": subscriber,
        }
    )


def call(event_id: str, subscriber: str, callee: str, ts: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": ts or now_ms(),
            "partner_id": "p1",
            "caller": "+12025550100",
            "callee": callee,
            "subscriber_id": subscriber,
        }
    )


async def send(
    bootstrap: str, topic: str, values: list[bytes], partition: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, v, key=b"p1:" + uuid.uuid4().bytes, partition=partition)
            for v in values
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def by_event(records: list[Read]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        alert = r.json()
        out.setdefault(str(alert["event_id"]), []).append(alert)
    return out


def rules_of(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(str(a["rule"]) for a in alerts)


def read_alerts(bootstrap: str, topic: str, want: dict[str, int]) -> dict[str, list[Any]]:
    """The alerts of ``topic`` by event id, once each event in ``want`` has that many."""

    def done(records: list[Read]) -> bool:
        got = by_event(records)
        return all(len(got.get(e, ())) >= n for e, n in want.items())

    got = by_event(asyncio.run(read_topic(bootstrap, topic, until=done, within=90)))
    assert done_enough(got, want), got
    return got


def done_enough(got: dict[str, list[Any]], want: dict[str, int]) -> bool:
    return all(len(got.get(e, ())) >= n for e, n in want.items())


@dataclass
class Stack:
    worker: WorkerProcess
    topics: Topics
    bootstrap: str


def upsert_indicators(redis_url: str, prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=prefix)
    store.upsert(
        [
            Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",)),
            Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("test",)),
        ]
    )


def drop_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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
    upsert_indicators(redis_url, prefix)
    worker = WorkerProcess(
        topics,
        prefix,
        tmp_path_factory.mktemp("journey"),
        extra_env={"SCAMWATCH_SUPPRESS_SECONDS": str(SUPPRESS_S)},
        data_path=request.param,
    ).start()
    try:
        worker.wait_assigned()
        yield Stack(worker, topics, kafka_bootstrap)
    finally:
        worker.kill()
        asyncio.run(delete_topics(kafka_bootstrap, topics.made))
        drop_keys(redis_url, prefix)


def test_journey_within_the_window_and_none_after_it(stack: Stack) -> None:
    t, bootstrap = stack.topics, stack.bootstrap
    now = now_ms()
    pages = [
        web("w-in", "s-in", now - 60_000),
        web("w-old", "s-old", now - (WINDOW_S + 120) * 1000),  # older than the window
    ]
    asyncio.run(send(bootstrap, t.web, pages))
    read_alerts(bootstrap, t.alerts, {"w-in": 1, "w-old": 1})
    stack.worker.wait_metric(lambda m: m.total("scamwatch_exposures") == 1)
    calls = [call("c-in", "s-in", "1-800-555-0199"), call("c-old", "s-old", "1-800-555-0199")]
    asyncio.run(send(bootstrap, t.calls, calls))
    got = read_alerts(bootstrap, t.alerts, {"c-in": 2, "c-old": 1})
    assert rules_of(got["c-in"]) == ["callee_scam_number", "victim_journey"]
    (journey,) = [a for a in got["c-in"] if a["rule"] == "victim_journey"]
    assert journey["severity"] == "critical"
    assert journey["journey"]["exposure_alert_id"] == got["w-in"][0]["alert_id"]
    assert journey["journey"]["exposure_rule"] == "host_scam_domain"
    assert 59 < journey["journey"]["seconds_since"] < 600
    # the old page's subscriber: the number rule only, never a journey (an event's alerts
    # are counted before they are sent)
    assert rules_of(got["c-old"]) == ["callee_scam_number"]
    m = stack.worker.metrics()
    assert m.total("scamwatch_alerts_total", rule="victim_journey") == 1


def test_sightings_for_an_unknown_number(stack: Stack) -> None:
    t, bootstrap = stack.topics, stack.bootstrap
    page = web("w-num", "s-num", now_ms() - 5_000, f"https://{SCAM_DOMAIN}/call/1-888-555-0123")
    asyncio.run(send(bootstrap, t.web, [page]))
    read_alerts(bootstrap, t.alerts, {"w-num": 1})
    asyncio.run(send(bootstrap, t.calls, [call("c-num", "s-num", "(888) 555-0123")]))

    def both(records: list[Read]) -> bool:
        return {(r.json()["kind"], r.json()["event_id"]) for r in records} >= {
            ("page", "w-num"),
            ("call", "c-num"),
        }

    records = asyncio.run(read_topic(bootstrap, t.sightings, until=both, within=90))
    assert both(records), [r.json() for r in records]
    sightings = [Sighting.from_json(r.value) for r in records]
    for s, r in zip(sightings, records, strict=True):
        assert s.number == UNKNOWN and r.key == UNKNOWN.encode()
        assert s.subscriber_id == "s-num"
    web_alert = read_alerts(bootstrap, t.alerts, {"w-num": 1})["w-num"][0]
    assert {s.exposure for s in sightings} == {web_alert["alert_id"]}
    m = stack.worker.wait_metric(lambda m: m.total("scamwatch_sightings_total", kind="call") >= 1)
    assert m.total("scamwatch_sightings_total", kind="page") >= 1


def test_suppression_counts_and_the_suppressed_field(stack: Stack) -> None:
    t, bootstrap = stack.topics, stack.bootstrap
    base = now_ms()
    burst = [call(f"c-sup{i}", "s-sup", SCAM_NUMBER, base + i) for i in range(4)]
    asyncio.run(send(bootstrap, t.calls, burst, partition=0))  # in order
    stack.worker.wait_metric(
        lambda m: m.total("scamwatch_alerts_suppressed_total", rule="callee_scam_number") >= 3
    )
    window_over = time.monotonic() + SUPPRESS_S + 0.5  # the first alert was emitted before
    emitted = read_alerts(bootstrap, t.alerts, {"c-sup0": 1})
    assert "suppressed" not in emitted["c-sup0"][0]
    assert not {"c-sup1", "c-sup2", "c-sup3"} & emitted.keys()
    time.sleep(max(0.0, window_over - time.monotonic()))
    asyncio.run(send(bootstrap, t.calls, [call("c-sup4", "s-sup", SCAM_NUMBER)], partition=0))
    got = read_alerts(bootstrap, t.alerts, {"c-sup4": 1})
    assert got["c-sup4"][0]["suppressed"] == {
        "count": 3,
        "first_ts": format_rfc3339(base + 1),
        "last_ts": format_rfc3339(base + 3),
    }
    assert (
        stack.worker.metrics().total("scamwatch_alerts_suppressed_total", rule="callee_scam_number")
        == 3
    )


_ASSIGNED = re.compile(r"assigned \d+ input partitions: (\[.*\])")


def owned(worker: WorkerProcess, topic: str) -> set[int]:
    """The partitions of ``topic`` the worker said it was assigned last."""
    lines = [ln for ln in worker.log_tail(2000).splitlines() if _ASSIGNED.search(ln)]
    if not lines:
        return set()
    match = _ASSIGNED.search(lines[-1])
    assert match is not None
    return {p for name, p in ast.literal_eval(match.group(1)) if name == topic}


def test_a_journey_across_two_workers(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, unique_name: str, tmp_path: Path
) -> None:
    t = Topics(unique_name)
    asyncio.run(create_topics(kafka_bootstrap, t.all, partitions=4))
    upsert_indicators(redis_url, key_prefix)
    a = WorkerProcess(t, key_prefix, tmp_path / "a").start()
    b = WorkerProcess(t, key_prefix, tmp_path / "b").start()
    try:
        a.wait_assigned()
        b.wait_assigned()
        deadline = time.monotonic() + 90
        split: tuple[set[int], set[int]] = (set(), set())
        while time.monotonic() < deadline:
            split = (owned(a, t.web), owned(b, t.calls))
            shares = (a.metrics().total("scamwatch_assigned_partitions"),)
            shares += (b.metrics().total("scamwatch_assigned_partitions"),)
            if sum(shares) == 8 and min(shares) > 0 and all(split):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no split: {split}\n{a.log_tail()}\n{b.log_tail()}")
        web_partition, call_partition = min(split[0]), min(split[1])
        asyncio.run(
            send(kafka_bootstrap, t.web, [web("w-x", "s-x", now_ms() - 1000)], web_partition)
        )
        read_alerts(kafka_bootstrap, t.alerts, {"w-x": 1})
        b.wait_metric(lambda m: m.total("scamwatch_exposures") >= 1, timeout=30)
        asyncio.run(
            send(kafka_bootstrap, t.calls, [call("c-x", "s-x", SCAM_NUMBER)], call_partition)
        )
        got = read_alerts(kafka_bootstrap, t.alerts, {"c-x": 2})
        assert rules_of(got["c-x"]) == ["callee_scam_number", "victim_journey"]
        (journey,) = [x for x in got["c-x"] if x["rule"] == "victim_journey"]
        assert journey["journey"]["exposure_alert_id"] == got["w-x"][0]["alert_id"]
        # the page was matched by one worker, the call by the other
        web_done = a.metrics().total("scamwatch_events_total", stream="web", outcome="matched")
        journeys = b.metrics().total("scamwatch_alerts_total", rule="victim_journey")
        assert (web_done, journeys) == (1, 1), (web_done, journeys)
        # a restarted worker knows the exposures still open
        a.stop()
        c = WorkerProcess(t, key_prefix, tmp_path / "c").start()
        try:
            c.wait_metric(lambda m: m.total("scamwatch_exposures") == 1)
        finally:
            c.kill()
    finally:
        a.kill()
        b.kill()
        asyncio.run(delete_topics(kafka_bootstrap, t.made))
