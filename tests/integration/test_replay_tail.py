"""`scamwatch replay` and `scamwatch alerts tail` against the real local Kafka."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from engine.kafka_io import ensure_topics, iter_records, make_producer, replay_lines
from engine.settings import Settings

CLI = [sys.executable, "-m", "engine.cli"]


def _run(args: list[str], bootstrap: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCAMWATCH_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "200"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


async def _consume_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes]] = []
    try:
        for _ in range(100):  # bounded: at most 100 polls of 200 ms
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out += [(r.key, r.value or b"") for r in records]
            if len(out) >= count:
                break
    finally:
        await consumer.stop()
    return out


def _call(n: int, subscriber: str | None = "sub-1") -> dict[str, object]:
    record: dict[str, object] = {
        "event_id": f"e-{n}",
        "ts": 1767225600000 + n,
        "partner_id": "telco-a",
        "caller": "+12125550100",
        "callee": "+18005550199",
    }
    if subscriber:
        record["subscriber_id"] = subscriber
    return record


def test_replay_sends_every_line_keyed_and_counts_non_json(
    kafka_bootstrap: str, settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    topic = f"{unique_name}-calls"
    asyncio.run(ensure_topics(settings.kafka, [topic], partitions=2))
    lines = [orjson.dumps(_call(n, "sub-1" if n % 2 else None)) for n in range(40)]
    garbage = b"CDR|telco-a|+12125550100|garbled \xff"
    lines.insert(17, garbage)
    feed = tmp_path / "calls.jsonl"
    feed.write_bytes(b"\n".join(lines) + b"\n\n")  # a trailing blank line is skipped

    done = _run(
        ["replay", str(feed), "--stream", "calls", "--topic", topic, "--rate", "500"],
        kafka_bootstrap,
    )
    assert done.returncode == 0, done.stderr
    assert "sent 41 events" in done.stderr
    assert "1 line(s) were not JSON objects" in done.stderr
    assert "1 blank line(s) skipped" in done.stderr

    got = asyncio.run(_consume_all(kafka_bootstrap, topic, 41))
    assert len(got) == 41
    assert sorted(value for _, value in got) == sorted(lines)
    keys = {value: key for key, value in got}
    assert keys[garbage] is None  # not JSON: no key, the worker dead-letters it
    assert keys[lines[0]] == b"telco-a:e-0"  # no subscriber: partner + event (call) id
    assert keys[lines[1]] == b"telco-a:sub-1"


def test_replay_reads_gzip_files(
    kafka_bootstrap: str, settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    topic = f"{unique_name}-calls"
    asyncio.run(ensure_topics(settings.kafka, [topic]))
    lines = [orjson.dumps(_call(n)) for n in range(25)]
    feed = tmp_path / "calls.jsonl.gz"
    feed.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    done = _run(["replay", str(feed), "--stream", "calls", "--topic", topic], kafka_bootstrap)
    assert done.returncode == 0, done.stderr
    assert "sent 25 events" in done.stderr
    got = asyncio.run(_consume_all(kafka_bootstrap, topic, 25))
    assert sorted(value for _, value in got) == sorted(lines)


def test_replay_producer_waits_for_every_in_sync_replica(
    kafka_bootstrap: str, settings: Settings, unique_name: str
) -> None:
    """acks=all: a record replay counts as sent survives a leader failover (acks=1 would
    lose what the old leader had not replicated yet)."""
    topic = f"{unique_name}-calls"
    asyncio.run(ensure_topics(settings.kafka, [topic]))

    async def replay_through_it() -> int:
        producer = await make_producer(settings.kafka)
        try:
            # aiokafka keeps the acks it sends in produce requests on its sender, not in
            # public API: "all" is stored as -1
            assert producer._sender._acks == -1
            lines = [(orjson.dumps(_call(n)), 1) for n in range(5)]
            stats = await replay_lines(lines, topic=topic, kafka=settings.kafka, producer=producer)
        finally:
            await producer.stop()
        return stats.sent

    assert asyncio.run(replay_through_it()) == 5
    assert len(asyncio.run(_consume_all(kafka_bootstrap, topic, 5))) == 5


def test_replay_fails_clearly_on_a_missing_file(kafka_bootstrap: str, tmp_path: Path) -> None:
    done = _run(["replay", str(tmp_path / "nope.jsonl"), "--stream", "web"], kafka_bootstrap)
    assert done.returncode != 0
    assert "nope.jsonl" in done.stderr


def _alert(n: int, rule: str, severity: str) -> dict[str, object]:
    return {
        "alert_id": f"a-{n}",
        "ts": "2026-01-01T00:00:01.000Z",
        "event_ts": 1767225600000 + n,
        "stream": "calls",
        "rule": rule,
        "severity": severity,
        "partner_id": "telco-a",
        "subscriber_id": f"sub-{n}",
        "event_id": f"e-{n}",
        "matches": [
            {
                "field": "callee",
                "observed": "1-800-555-0199",
                "normalized": "+18005550199",
                "indicator": {
                    "type": "phone",
                    "value": "+18005550199",
                    "sources": ["ftc-complaints", "partner-a"],
                    "severity": severity,
                },
            }
        ],
    }


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def test_tail_prints_one_readable_line_per_alert(
    kafka_bootstrap: str, settings: Settings, unique_name: str
) -> None:
    topic = f"{unique_name}-alerts"
    asyncio.run(ensure_topics(settings.kafka, [topic]))
    alerts = [
        _alert(n, rule, sev)
        for n, (rule, sev) in enumerate(
            [
                ("callee_scam_number", "critical"),
                ("host_scam_domain", "high"),
                ("keyword_impersonation", "medium"),
            ]
        )
    ]
    values = [orjson.dumps(a) for a in alerts]
    asyncio.run(_produce(kafka_bootstrap, topic, values))

    done = _run(
        ["alerts", "tail", "--topic", topic, "--from-beginning", "--max", "3", "--timeout", "20"],
        kafka_bootstrap,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 3
    for line, alert in zip(lines, alerts, strict=True):
        assert str(alert["rule"]) in line
        assert str(alert["severity"]).upper() in line
        assert f"telco-a/{alert['subscriber_id']}" in line
        assert "callee=1-800-555-0199 → phone +18005550199" in line
        assert "ftc-complaints, partner-a" in line
    assert "3 alert(s)" in done.stderr

    raw = _run(
        ["alerts", "tail", "--topic", topic, "--from-beginning", "--json", "--timeout", "3"],
        kafka_bootstrap,
    )
    assert raw.returncode == 0, raw.stderr
    assert [orjson.loads(line) for line in raw.stdout.splitlines()] == alerts


def test_tail_without_group_commits_nothing(
    kafka_bootstrap: str, settings: Settings, unique_name: str
) -> None:
    """Two tails read the same alerts: neither takes partitions or offsets from the other."""
    topic = f"{unique_name}-alerts"
    asyncio.run(ensure_topics(settings.kafka, [topic], partitions=2))
    asyncio.run(
        _produce(
            kafka_bootstrap,
            topic,
            [orjson.dumps(_alert(n, "url_scam_url", "high")) for n in range(6)],
        )
    )

    async def read_all() -> int:
        count = 0
        async for _ in iter_records(settings.kafka, [topic], from_beginning=True, idle_timeout=3):
            count += 1
        return count

    async def both() -> list[int]:
        return list(await asyncio.gather(read_all(), read_all()))

    assert asyncio.run(both()) == [6, 6]


def test_replay_and_tail_say_clearly_when_kafka_is_down(tmp_path: Path) -> None:
    feed = tmp_path / "web.jsonl"
    feed.write_bytes(b'{"event_id": "w1", "ts": 1767225600000, "partner_id": "p", "host": "a.b"}\n')
    for args in (["replay", str(feed), "--stream", "web"], ["alerts", "tail", "--timeout", "2"]):
        done = _run(args, "127.0.0.1:1", timeout=60)  # nothing listens on port 1
        assert done.returncode == 2, done.stderr
        assert "Kafka at 127.0.0.1:1 is unreachable" in done.stderr
        assert "Traceback" not in done.stderr
