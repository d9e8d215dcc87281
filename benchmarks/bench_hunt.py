"""Retro-hunt benchmark: retained events read and matched per second by one process.

Fills the calls and web topics of its own (4 partitions each) with events of the seeded
sample-traffic generator (a few percent scam, some malformed), then hunts them the way
``scamwatch hunt`` does (:func:`engine.hunt.run_hunt`: offsets_for_times, assigned
partitions, the worker's RecordProcessor, retro alerts produced to an alerts topic of its
own) against the bundled sample feeds, best of ``--repeat`` runs. Needs the local stack.
Prints a table and writes ``benchmarks/results/bench_hunt.json``; deletes its topics.

    .venv/bin/python benchmarks/bench_hunt.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.matcher import Matcher
from engine.core.models import Stream
from engine.core.processor import RecordProcessor
from engine.core.records import Hunt
from engine.devtools.traffic import TrafficIndicators, generate, sample_snapshot
from engine.hunt import HuntSummary, KafkaAlertSink, run_hunt
from engine.kafka_io import delete_topics, ensure_topics, make_producer, replay_lines
from engine.settings import Settings, load_settings

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_PER_S = 30_000


def _events(pool: list[bytes], count: int, tag: str) -> Iterator[tuple[bytes, int]]:
    """``count`` events from ``pool``, each with an event id of its own."""
    for i in range(count):
        line = pool[i % len(pool)]
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield line, len(line)
            continue
        if isinstance(record, dict) and isinstance(record.get("event_id"), str):
            record["event_id"] = f"{tag}{record['event_id']}-{i}"
            line = orjson.dumps(record)
        yield line, len(line)


async def _prefill(settings: Settings, topics: dict[str, str], count: int) -> None:
    facts = TrafficIndicators.from_snapshot(sample_snapshot(), int(time.time() * 1000))
    traffic = generate(facts, calls=2000, web=2000, seed=11)
    producer = await make_producer(settings.kafka)
    try:
        await asyncio.gather(
            replay_lines(
                _events(list(traffic.calls), count // 2, "c"),
                topic=topics["calls"], kafka=settings.kafka, producer=producer,
            ),
            replay_lines(
                _events(list(traffic.web), count - count // 2, "w"),
                topic=topics["web"], kafka=settings.kafka, producer=producer,
            ),
        )  # fmt: skip
    finally:
        await producer.stop()


async def _hunt_once(
    settings: Settings, topics: dict[str, str], since_ms: int, until_ms: int
) -> HuntSummary:
    matcher = Matcher.build(sample_snapshot())
    processor = RecordProcessor(
        matcher=lambda: matcher,
        alerts_topic=topics["alerts"],
        deadletter_topic="unused",
        max_record_bytes=settings.processing.max_record_bytes,
        max_output_bytes=settings.processing.max_output_bytes,
        hunt=Hunt("bench", "since", "until"),
    )
    producer = await make_producer(settings.kafka, client_id="scamwatch-hunt-bench")
    try:
        sink = KafkaAlertSink(producer, topics["alerts"])
        return await run_hunt(
            settings.kafka,
            {topics["calls"]: Stream.CALLS, topics["web"]: Stream.WEB},
            since_ms=since_ms,
            until_ms=until_ms,
            processor=processor,
            sink=sink,
        )
    finally:
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events retained (half each)")
    parser.add_argument("--repeat", type=int, default=3, help="hunts over them (the best counts)")
    args = parser.parse_args()
    settings = load_settings()
    console = Console()
    tag = f"bench-hunt-{uuid.uuid4().hex[:8]}"
    topics = {name: f"{tag}-{name}" for name in ("calls", "web", "alerts")}
    asyncio.run(ensure_topics(settings.kafka, list(topics.values()), partitions=4))
    try:
        since_ms = int(time.time() * 1000) - 1000
        console.print(f"filling {topics['calls']} and {topics['web']} with {args.events} events")
        asyncio.run(_prefill(settings, topics, args.events))
        until_ms = int(time.time() * 1000) + 1000
        runs = [asyncio.run(_hunt_once(settings, topics, since_ms, until_ms))]
        for _ in range(args.repeat - 1):
            runs.append(asyncio.run(_hunt_once(settings, topics, since_ms, until_ms)))
    finally:
        asyncio.run(delete_topics(settings.kafka, list(topics.values())))
    best = max(runs, key=lambda r: r.rate)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1m": os.getloadavg()[0],
        "events": best.events,
        "invalid": best.invalid,
        "alerts": best.alerts,
        "partitions": best.partitions,
        "rates": [round(r.rate) for r in runs],
        "best_per_s": round(best.rate),
        "target_per_s": TARGET_PER_S,
        "ok": best.rate >= TARGET_PER_S,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_hunt.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"retro-hunt, one process ({result['when']}, load {result['load_1m']:.1f})")
    for column in (
        "events",
        "alerts",
        "invalid",
        "partitions",
        "events/s (best)",
        "runs",
        "target",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{best.events:,}", f"{best.alerts:,}", f"{best.invalid:,}", str(best.partitions),
        f"{best.rate:,.0f}", ", ".join(f"{r:,}" for r in result["rates"]),
        f"≥ {TARGET_PER_S:,} {'✓' if result['ok'] else '✗'}",
    )  # fmt: skip
    console.print(table)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
