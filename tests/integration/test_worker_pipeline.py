"""One real worker on the real local Kafka and Redis: every input ends as an alert, a clean
verdict or a dead-letter; /metrics says the same; indicator changes go live without a
restart and without dropping events during the swap."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
import redis

from engine.core.models import Indicator, IndicatorType
from engine.devtools.scrape import MetricsScrape, scrape_metrics
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    SCAMWATCH,
    Read,
    Topics,
    WorkerProcess,
    call_event,
    create_topics,
    delete_topics,
    produce,
    read_topic,
    web_event,
)

SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
MAX_RECORD_BYTES = 2048


@dataclass
class Stack:
    worker: WorkerProcess
    topics: Topics
    store: RedisStore
    prefix: str
    bootstrap: str
    redis_url: str


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
    store.upsert(
        [
            Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",)),
            Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("test",)),
        ]
    )
    worker = WorkerProcess(
        topics,
        prefix,
        tmp_path_factory.mktemp("worker"),
        extra_env={"SCAMWATCH_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)},
        data_path=request.param,
    ).start()
    try:
        worker.wait_assigned()
        yield Stack(worker, topics, store, prefix, kafka_bootstrap, redis_url)
    finally:
        worker.kill()
        asyncio.run(delete_topics(kafka_bootstrap, topics.made))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def events_total(samples: MetricsScrape) -> float:
    return samples.total("scamwatch_events_total")


def wait_processed(stack: Stack, before: float, n: int) -> MetricsScrape:
    return stack.worker.wait_metric(lambda m: events_total(m) >= before + n, timeout=90)


def alerts_by_event(records: list[Read]) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for r in records:
        alert = r.json()
        out.setdefault(str(alert["event_id"]), []).append(alert)
    return out


def test_every_input_is_an_alert_a_clean_verdict_or_a_dead_letter(stack: Stack) -> None:
    records: list[tuple[str, bytes | None, bytes]] = []  # (topic, key, value)
    matched_ids: set[str] = set()
    bad_keys: dict[bytes, str] = {}  # input key -> expected dead-letter reason
    # the calls are dated before the scam pages their subscribers see (each web alert below
    # exposes its subscriber from its ts on): whatever order the worker interleaves the two
    # topics in, no call is a victim_journey. Dated in the same millisecond, a call handled
    # after its subscriber's page was one (the exposure covers its own ts)
    calls_ts = int(time.time() * 1000) - 60_000
    for i in range(200):
        key = f"p1:s{i % 97}".encode()
        if i % 4 == 0:
            records.append(
                (stack.topics.calls, key, call_event(i, callee="1-800-555-0199", ts_ms=calls_ts))
            )
            matched_ids.add(f"c{i}")
        elif i % 4 == 1:  # withheld caller: processed, not an error
            records.append(
                (
                    stack.topics.calls,
                    key,
                    call_event(i, callee="+12025550111", caller="anonymous", ts_ms=calls_ts),
                )
            )
        elif i % 4 == 2:
            records.append(
                (stack.topics.calls, key, call_event(i, callee="+12025550111", ts_ms=calls_ts))
            )
        else:  # no callee: schema_violation
            bad = f"bad-c{i}".encode()
            value = orjson.dumps(
                {
                    "event_id": f"c{i}",
                    "ts": 1_764_000_000_000,
                    "partner_id": "p1",
                    "caller": "+12025550100",
                }
            )
            records.append((stack.topics.calls, bad, value))
            bad_keys[bad] = "schema_violation"
    for i in range(100):
        key = f"p1:s{i % 97}".encode()
        if i % 5 == 0:
            records.append((stack.topics.web, key, web_event(i, host=f"login.{SCAM_DOMAIN}")))
            matched_ids.add(f"w{i}")
        else:
            records.append((stack.topics.web, key, web_event(i, host="www.example.org")))
    for i in range(10):
        bad_keys[f"json-{i}".encode()] = "invalid_json"
        records.append((stack.topics.calls, f"json-{i}".encode(), b'{"event_id": "x", '))
    for i in range(5):
        bad_keys[f"utf8-{i}".encode()] = "invalid_utf8"
        records.append((stack.topics.web, f"utf8-{i}".encode(), b'{"host": "\xff\xfe"}'))
    for i in range(3):
        bad_keys[f"big-{i}".encode()] = "too_large"
        big = orjson.dumps({"event_id": f"big{i}", "pad": "x" * (MAX_RECORD_BYTES + 10)})
        records.append((stack.topics.calls, f"big-{i}".encode(), big))
    bad_keys[b"web-nohost"] = "schema_violation"
    records.append(
        (
            stack.topics.web,
            b"web-nohost",
            orjson.dumps({"event_id": "w-x", "ts": 1_764_000_000_000, "partner_id": "p1"}),
        )
    )
    n_calls = sum(1 for t, _, _ in records if t == stack.topics.calls)
    n_web = len(records) - n_calls

    before = stack.worker.metrics()

    async def send_all() -> None:
        await produce(
            stack.bootstrap,
            stack.topics.calls,
            [(k, v) for t, k, v in records if t == stack.topics.calls],
        )
        await produce(
            stack.bootstrap,
            stack.topics.web,
            [(k, v) for t, k, v in records if t == stack.topics.web],
        )

    asyncio.run(send_all())
    after = wait_processed(stack, events_total(before), len(records))

    def delta(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    # the invariant, per stream: input = matched + clean + dead-lettered
    for stream, n in (("calls", n_calls), ("web", n_web)):
        outcomes = {
            o: delta("scamwatch_events_total", stream=stream, outcome=o)
            for o in ("matched", "clean", "deadletter")
        }
        assert sum(outcomes.values()) == n, (stream, outcomes)
    assert delta("scamwatch_events_total", outcome="matched") == len(matched_ids)
    assert delta("scamwatch_events_total", outcome="deadletter") == len(bad_keys)
    assert delta("scamwatch_unparsed_values_total", stream="calls", field="caller") == 50

    alerts = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda r: len(alerts_by_event(r)) >= len(matched_ids),
        )
    )
    by_event = alerts_by_event(alerts)
    assert set(by_event) == matched_ids
    for event_id, found in by_event.items():
        rules = {a["rule"] for a in found}
        assert rules == (
            {"callee_scam_number"} if event_id.startswith("c") else {"host_scam_domain"}
        )
    assert all(r.key is not None and r.key.startswith(b"p1:s") for r in alerts)

    dead = asyncio.run(
        read_topic(
            stack.bootstrap, stack.topics.deadletter, until=lambda r: len(r) >= len(bad_keys)
        )
    )
    assert len(dead) == len(bad_keys)
    assert {r.key: r.json()["reason"] for r in dead} == bad_keys
    assert Counter(r.json()["reason"] for r in dead) == Counter(bad_keys.values())
    for r in dead:
        record = r.json()
        assert record["source"]["topic"] in (stack.topics.calls, stack.topics.web)  # type: ignore[index]
        assert record["error"]
        if record["reason"] == "invalid_utf8":
            assert record["raw_encoding"] == "base64"
    assert delta("scamwatch_deadletter_total") == len(bad_keys)
    assert delta("scamwatch_deadletter_total", reason="too_large", stream="calls") == 3


def test_metrics_exposition_has_every_required_name(stack: Stack) -> None:
    families = scrape_metrics(stack.worker.metrics_port).families
    required = {
        "scamwatch_events": ("counter", {"stream", "outcome"}),
        "scamwatch_alerts": ("counter", {"rule", "severity"}),
        "scamwatch_deadletter": ("counter", {"stream", "reason"}),
        "scamwatch_indicators": ("gauge", {"type"}),
        "scamwatch_indicator_version": ("gauge", set()),
        "scamwatch_indicator_store_up": ("gauge", set()),
        "scamwatch_matcher_build_seconds": ("histogram", set()),
        "scamwatch_event_latency_seconds": ("histogram", {"stream"}),
    }
    for name, (kind, labels) in required.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert labels <= set(sample.labels) | {"le"}, (name, sample)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("scamwatch_indicator_store_up", ())] == 1
    assert samples[("scamwatch_indicator_version", ())] == stack.store.version()
    assert samples[("scamwatch_indicators", (("type", "phone"),))] >= 1
    assert samples[("scamwatch_indicators", (("type", "domain"),))] == 1
    assert samples[("scamwatch_matcher_build_seconds_count", ())] >= 1


def cli(stack: Stack, *args: str) -> str:
    env = dict(os.environ, SCAMWATCH_REDIS_PREFIX=stack.prefix, SCAMWATCH_REDIS_URL=stack.redis_url)
    done = subprocess.run([SCAMWATCH, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_version(stack: Stack, version: int) -> float:
    started = time.monotonic()
    stack.worker.wait_metric(lambda m: m.get("scamwatch_indicator_version") == version, timeout=20)
    return time.monotonic() - started


def test_indicator_added_and_removed_with_the_cli_goes_live(stack: Stack) -> None:
    number = "+18775550142"
    cli(stack, "indicators", "add", "phone", "+1 (877) 555-0142", "--source", "analyst")
    took = wait_version(stack, stack.store.version())
    print(f"indicator live in the worker {took:.2f} s after `indicators add` returned")

    key = b"p1:live"
    asyncio.run(
        produce(
            stack.bootstrap, stack.topics.calls, [(key, call_event(10_001, callee="877-555-0142"))]
        )
    )
    alerts = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda r: "c10001" in alerts_by_event(r),
            within=30,
        )
    )
    # its subscriber (s10) saw a scam page in an earlier test: a victim_journey comes too
    (alert,) = [a for a in alerts_by_event(alerts)["c10001"] if a["rule"] != "victim_journey"]
    assert alert["matches"][0]["normalized"] == number  # type: ignore[index]

    cli(stack, "indicators", "remove", "phone", number)
    wait_version(stack, stack.store.version())
    # the removed number, then a sentinel that still matches, on the same key (same
    # partition, in order): once the sentinel's alert is out, the first event was processed
    asyncio.run(
        produce(
            stack.bootstrap,
            stack.topics.calls,
            [
                (key, call_event(10_002, callee="+18775550142")),
                (key, call_event(10_003, callee=SCAM_NUMBER)),
            ],
        )
    )
    alerts = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda r: "c10003" in alerts_by_event(r),
            within=30,
        )
    )
    found = alerts_by_event(alerts)
    assert "c10003" in found
    assert "c10002" not in found


def test_nothing_is_dropped_while_matchers_are_swapped(stack: Stack) -> None:
    n = 1500
    before = stack.worker.metrics()
    swaps_before = before.total("scamwatch_matcher_swaps_total")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set() and i < 40:
            stack.store.upsert(
                [Indicator(IndicatorType.PHONE, f"+1866555{i:04d}", sources=("churn",))]
            )
            i += 1
            time.sleep(0.15)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        records = [
            (
                f"p2:s{i % 13}".encode(),
                call_event(20_000 + i, callee=SCAM_NUMBER if i % 3 == 0 else "+12025550111"),
            )
            for i in range(n)
        ]

        async def trickle() -> None:
            for chunk in range(0, n, 100):
                await produce(stack.bootstrap, stack.topics.calls, records[chunk : chunk + 100])
                await asyncio.sleep(0.1)

        asyncio.run(trickle())
    finally:
        stop.set()
        churner.join(timeout=30)
    after = wait_processed(stack, events_total(before), n)
    assert events_total(after) - events_total(before) == n
    assert after.total("scamwatch_matcher_swaps_total") - swaps_before >= 2
    expected = {f"c{20_000 + i}" for i in range(0, n, 3)}
    alerts = asyncio.run(
        read_topic(
            stack.bootstrap,
            stack.topics.alerts,
            until=lambda r: expected <= set(alerts_by_event(r)),
            within=60,
        )
    )
    assert expected <= set(alerts_by_event(alerts))
