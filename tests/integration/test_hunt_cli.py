"""``scamwatch hunt`` against the real Kafka and Redis: events produced with old record
timestamps into the test's own topics, hunted over a window that holds only some of them;
alerts to the alerts topic and to a file, only the indicators changed since a version, feed
files with no Redis, and the same ids when hunting twice."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from engine.core.models import Indicator, IndicatorType
from engine.core.timestamps import format_rfc3339
from engine.devtools.schemas import validate
from engine.store.redis import RedisStore
from tests.integration.worker_support import Topics, create_topics, delete_topics, read_topic

HOUR = 3_600_000
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there
SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
# the window hunted: [BASE - 2.5 h, BASE - 1.5 h); well within the topics' retention
BASE = time.time_ns() // 1_000_000


def _call(event_id: str, ts: int, callee: str = SCAM_NUMBER) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ts": ts,
        "partner_id": "telco-a",
        "subscriber_id": f"sub-{event_id}",
        "caller": f"+1212555{len(event_id):04d}",
        "callee": callee,
    }


def _web(event_id: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ts": ts,
        "partner_id": "telco-a",
        "subscriber_id": f"sub-{event_id}",
        "url": f"https://{SCAM_DOMAIN}/help",
    }


async def _produce_at(bootstrap: str, topic: str, events: list[tuple[int, dict[str, Any]]]) -> None:
    """Each event with the given Kafka record timestamp (the hunt's window is by it)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ts, event in events:
            key = f"{event['partner_id']}:{event['subscriber_id']}".encode()
            await producer.send_and_wait(topic, orjson.dumps(event), key=key, timestamp_ms=ts)
    finally:
        await producer.stop()


@pytest.fixture
def hunted(kafka_bootstrap: str, unique_name: str) -> Any:
    """Topics of the test's own with calls and web events an hour apart (old ones, in the
    window, and newer)."""
    topics = Topics(unique_name)
    asyncio.run(create_topics(kafka_bootstrap, [topics.calls, topics.web, topics.alerts], 2))
    calls = [
        (BASE - 3 * HOUR, _call("old", BASE - 3 * HOUR)),
        (BASE - 2 * HOUR, _call("inside-1", BASE - 2 * HOUR)),
        (BASE - 2 * HOUR + 1000, _call("inside-clean", BASE - 2 * HOUR, "+12125550123")),
        (BASE - 2 * HOUR + 2000, _call("inside-2", BASE - 2 * HOUR)),
        (BASE - 1 * HOUR, _call("newer", BASE - HOUR)),
    ]
    web = [
        (BASE - 3 * HOUR, _web("web-old", BASE - 3 * HOUR)),
        (BASE - 2 * HOUR, _web("web-inside", BASE - 2 * HOUR)),
    ]
    asyncio.run(_produce_at(kafka_bootstrap, topics.calls, calls))
    asyncio.run(_produce_at(kafka_bootstrap, topics.web, web))
    yield topics
    asyncio.run(delete_topics(kafka_bootstrap, [topics.calls, topics.web, topics.alerts]))


def _hunt(topics: Topics, prefix: str, *args: str, redis: str | None = None) -> str:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "SCAMWATCH_TOPIC_CALLS": topics.calls,
        "SCAMWATCH_TOPIC_WEB": topics.web,
        "SCAMWATCH_TOPIC_ALERTS": topics.alerts,
        "SCAMWATCH_REDIS_PREFIX": prefix,
    }
    if redis is not None:
        env["SCAMWATCH_REDIS_URL"] = redis
    window = ["--since", format_rfc3339(BASE - 5 * HOUR // 2), "--until"]
    window.append(format_rfc3339(BASE - 3 * HOUR // 2))
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "hunt", *window, *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    return stderr


def _store(redis_url: str, prefix: str) -> RedisStore:
    return RedisStore.from_url(redis_url, prefix=prefix)


def _indicator(type_: IndicatorType, value: str) -> Indicator:
    return Indicator(type=type_, value=value, sources=("test-feed",))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_hunt_finds_the_events_in_the_window_only_and_sends_retro_alerts(
    hunted: Topics, kafka_bootstrap: str, redis_url: str, key_prefix: str
) -> None:
    store = _store(redis_url, key_prefix)
    store.upsert([_indicator(IndicatorType.PHONE, SCAM_NUMBER)])
    store.upsert([_indicator(IndicatorType.DOMAIN, SCAM_DOMAIN)])

    stderr = _hunt(hunted, key_prefix)

    records = asyncio.run(
        read_topic(kafka_bootstrap, hunted.alerts, until=lambda r: len(r) >= 3, within=20)
    )
    alerts = [r.json() for r in records]
    assert sorted(a["event_id"] for a in alerts) == ["inside-1", "inside-2", "web-inside"]
    hunt_ids = {a["hunt"]["id"] for a in alerts}
    assert len(hunt_ids) == 1
    for alert in alerts:
        validate("alert.v1", alert)
        assert alert["retro"] is True
        assert alert["hunt"]["since"] == format_rfc3339(BASE - 5 * HOUR // 2)
        assert alert["hunt"]["until"] == format_rfc3339(BASE - 3 * HOUR // 2)
        assert alert["source"]["topic"] in (hunted.calls, hunted.web)
    assert {r.key for r in records} == {
        b"telco-a:sub-inside-1",
        b"telco-a:sub-inside-2",
        b"telco-a:sub-web-inside",
    }
    assert re.search(r"events read\s*│\s*4\s", stderr), stderr  # 3 calls, 1 web in the window
    assert "3 retro alert(s)" in stderr


def test_hunting_twice_gives_the_same_ids_and_output_writes_a_file(
    hunted: Topics, kafka_bootstrap: str, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    _store(redis_url, key_prefix).upsert([_indicator(IndicatorType.PHONE, SCAM_NUMBER)])
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"

    _hunt(hunted, key_prefix, "--stream", "calls", "--output", str(first))
    _hunt(hunted, key_prefix, "--stream", "calls", "--output", str(second))

    one, two = _lines(first), _lines(second)
    assert sorted(a["event_id"] for a in one) == ["inside-1", "inside-2"]
    assert sorted(a["alert_id"] for a in one) == sorted(a["alert_id"] for a in two)
    assert {a["hunt"]["id"] for a in one} == {a["hunt"]["id"] for a in two}
    assert len({a["hunt"]["id"] for a in one}) == 1
    # --output: nothing went to the alerts topic
    sent = asyncio.run(read_topic(kafka_bootstrap, hunted.alerts, until=lambda r: False, within=2))
    assert sent == []


def test_indicators_since_hunts_only_the_indicators_changed_after_that_version(
    hunted: Topics, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    store = _store(redis_url, key_prefix)
    store.upsert([_indicator(IndicatorType.PHONE, SCAM_NUMBER)])
    version = store.version()
    store.upsert([_indicator(IndicatorType.DOMAIN, SCAM_DOMAIN)])
    out, everything = tmp_path / "since.jsonl", tmp_path / "all.jsonl"

    _hunt(hunted, key_prefix, "--indicators-since", str(version), "--output", str(out))
    _hunt(hunted, key_prefix, "--output", str(everything))

    assert [a["event_id"] for a in _lines(out)] == ["web-inside"]
    assert len(_lines(everything)) == 3
    # another indicator selection is another hunt
    assert _lines(out)[0]["hunt"]["id"] != _lines(everything)[0]["hunt"]["id"]


def test_indicators_from_feed_files_need_no_redis(
    hunted: Topics, key_prefix: str, tmp_path: Path
) -> None:
    feed = tmp_path / "numbers.txt"
    feed.write_text(f"{SCAM_NUMBER}\n")
    out = tmp_path / "alerts.jsonl"

    _hunt(hunted, key_prefix, "--indicators", f"phone:{feed}", "-o", str(out), redis=NO_REDIS)

    alerts = _lines(out)
    assert sorted(a["event_id"] for a in alerts) == ["inside-1", "inside-2"]
    assert all(a["retro"] is True for a in alerts)
