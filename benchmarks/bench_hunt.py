"""Retro-hunt benchmark: retained events read and matched per second by one process.

Fills the calls and web topics of its own (4 partitions each) with events of the seeded
sample-traffic generator (a few percent scam, some malformed), then hunts them the way
``scamwatch hunt`` does (:func:`engine.hunt.run_hunt`: offsets_for_times, assigned
partitions, the worker's RecordProcessor, retro alerts produced to an alerts topic of its
own) against the bundled sample feeds, best of ``--repeat`` runs. Needs the local stack.
Prints a table and writes ``benchmarks/results/bench_hunt.json``; deletes its topics.

Then the automatic hunt (``SCAMWATCH_RETROHUNT_SECONDS``, :mod:`engine.stream.autohunt`):
its events/s in one process, unthrottled, over the same retained events (the target is the
same ≥ 30k/s); and a real worker's live throughput (a backlog drained, events/s from its
``scamwatch_events_total``) without a hunt and then with one running in it at the default
``SCAMWATCH_RETROHUNT_RATE`` (or ``--live-rate``), in the same run (``--live-events``
each; ``--skip-auto``).

    .venv/bin/python benchmarks/bench_hunt.py [--events 200000] [--live-events 150000]
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
from dataclasses import replace
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


async def _auto_hunt_once(settings: Settings, topics: dict[str, str]) -> tuple[float, float]:
    """One automatic hunt of every partition of the topics, in this process, unthrottled,
    for the sample indicators (all of them new): (events read, seconds)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from engine.metrics import WorkerMetrics
    from engine.store.memory import MemoryStore
    from engine.stream.autohunt import AutoHunter, MemoryHuntLedger, PartitionRequest

    snapshot = sample_snapshot()
    store = MemoryStore()
    store.upsert(snapshot.allowlist, allowlist=True)
    store.upsert(snapshot.indicators)
    metrics = WorkerMetrics()
    hunter = AutoHunter(
        settings,
        store=store,
        ledger=MemoryHuntLedger(),
        metrics=metrics,
        last_handled=lambda t, p: None,
        version=store.version,
        topics={topics["calls"]: Stream.CALLS, topics["web"]: Stream.WEB},
    )
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topics[n], p) for n in ("calls", "web") for p in range(4)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    work = {
        (tp.topic, tp.partition): PartitionRequest(0, [(store.version(), ends[tp])]) for tp in tps
    }
    hunter.owned = set(work)
    started = time.perf_counter()
    try:
        await hunter._hunt(work)
    finally:
        await hunter.close()
    elapsed = time.perf_counter() - started
    read = sum(
        metrics.registry.get_sample_value("scamwatch_hunt_events_total", {"stream": s}) or 0
        for s in ("calls", "web")
    )
    return read, elapsed


def _live_run(
    settings: Settings, tag: str, retained: int, live_events: int, rate: int
) -> dict[str, Any]:
    """A worker on topics of its own holding ``retained`` events drains a backlog of
    ``live_events`` twice: with no hunt, then with an automatic hunt of the retained events
    running in it (started by changing every sample indicator: all are hunted)."""
    import subprocess

    from engine.devtools.scrape import scrape_metrics
    from engine.store.redis import RedisStore

    def scrape(port: int) -> tuple[float, float]:
        m = scrape_metrics(port)
        return m.total("scamwatch_events_total"), m.total("scamwatch_hunt_events_total")

    topics = {name: f"{tag}-live-{name}" for name in ("calls", "web", "alerts", "deadletter")}
    prefix = f"{tag}:"
    store = RedisStore.from_settings(settings.redis, prefix=prefix)
    snapshot = sample_snapshot()
    store.upsert(snapshot.allowlist, allowlist=True)
    store.upsert(snapshot.indicators)
    asyncio.run(ensure_topics(settings.kafka, list(topics.values()), partitions=4))
    asyncio.run(_prefill(settings, topics, retained))
    import socket

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    metrics_port = free_port()
    env = {
        **os.environ,
        "SCAMWATCH_TOPIC_CALLS": topics["calls"],
        "SCAMWATCH_TOPIC_WEB": topics["web"],
        "SCAMWATCH_TOPIC_ALERTS": topics["alerts"],
        "SCAMWATCH_TOPIC_DEADLETTER": topics["deadletter"],
        "SCAMWATCH_TOPIC_SIGHTINGS": f"{tag}-live-sightings",
        "SCAMWATCH_APP_ID": f"{tag}-app",
        "SCAMWATCH_REDIS_PREFIX": prefix,
        "SCAMWATCH_DISCOVERY": "off",
        "SCAMWATCH_SUPPRESS_SECONDS": "0",
        "SCAMWATCH_RETROHUNT_SECONDS": "3600",
        "SCAMWATCH_RETROHUNT_RATE": str(rate),
        "SCAMWATCH_METRICS_BIND": "127.0.0.1",
        "SCAMWATCH_WEB_BIND": "127.0.0.1",
        "SCAMWATCH_STATE_DIR": str(Path("/tmp") / tag),
    }
    log = (Path("/tmp") / f"{tag}-worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--web-port", str(free_port()),
         "--metrics-port", str(metrics_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()

    def wait_for(total: float, timeout: float = 600) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited {proc.returncode} (see {log.name})")
            try:
                got = scrape(metrics_port)
            except OSError:
                got = (0.0, 0.0)
            if got[0] >= total:
                return got
            time.sleep(0.05)
        raise RuntimeError(f"the worker did not process {total} events in {timeout} s")

    def drain(done: float, count: int, change: bool) -> tuple[float, float, float]:
        """Produce ``count`` events (a backlog), then time the worker processing what is
        left of it once all are produced (it consumes while they are produced)."""
        if change:  # every sample indicator changed: the worker hunts the retained events
            hunted_before = scrape(metrics_port)[1]
            store.upsert([replace(i, tags=(*i.tags, "bench-changed")) for i in snapshot.indicators])
            deadline = time.monotonic() + 120
            while scrape(metrics_port)[1] <= hunted_before:  # timed once the hunt reads
                if time.monotonic() > deadline:
                    raise RuntimeError("the automatic hunt did not start")
                time.sleep(0.05)
        asyncio.run(_prefill(settings, topics, count))
        started = time.monotonic()
        processed, hunted_at_start = scrape(metrics_port)
        _, hunted = wait_for(done + count)
        elapsed = time.monotonic() - started
        return (done + count - processed) / elapsed, hunted - hunted_at_start, elapsed

    try:
        wait_for(retained)  # the retained events, processed live (no hunt: nothing changed)
        quiet, _, quiet_s = drain(retained, live_events, change=False)
        busy, hunted, busy_s = drain(retained + live_events, live_events, change=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        asyncio.run(delete_topics(settings.kafka, [*topics.values(), f"{tag}-live-sightings"]))
        store.client.delete(*store.keys())
        store.client.delete(f"{prefix}{{i}}:hunted:{tag}-app")
    return {
        "retained": retained,
        "live_events": live_events,
        "live_per_s_no_hunt": round(quiet),
        "live_per_s_with_hunt": round(busy),
        "ratio": round(busy / quiet, 3),
        "hunt_events_during": round(hunted),
        "hunt_per_s_during": round(hunted / busy_s),
        "seconds": [round(quiet_s, 2), round(busy_s, 2)],
        "rate_setting": rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events retained (half each)")
    parser.add_argument("--repeat", type=int, default=3, help="hunts over them (the best counts)")
    parser.add_argument("--live-events", type=int, default=150_000, help="backlog, x2")
    parser.add_argument("--skip-auto", action="store_true", help="manual hunt rows only")
    parser.add_argument(
        "--live-rate",
        type=int,
        default=load_settings().worker.retrohunt_rate,
        help="SCAMWATCH_RETROHUNT_RATE of the worker (default: the setting's)",
    )
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
        auto_runs: list[tuple[float, float]] = []
        if not args.skip_auto:
            unthrottled = load_settings(
                worker={"retrohunt_seconds": 3600, "retrohunt_rate": 10**9},
                topics={"alerts": topics["alerts"]},
            )
            for _ in range(args.repeat):
                auto_runs.append(asyncio.run(_auto_hunt_once(unthrottled, topics)))
    finally:
        asyncio.run(delete_topics(settings.kafka, list(topics.values())))
    live = None
    if not args.skip_auto:
        console.print(f"live path with and without an automatic hunt ({args.live_events} each)")
        live = _live_run(settings, tag, args.events // 4, args.live_events, args.live_rate)
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
    if auto_runs:
        auto_rates = [n / t for n, t in auto_runs]
        result["automatic"] = {
            "events": round(max(auto_runs)[0]),
            "rates": [round(r) for r in auto_rates],
            "best_per_s": round(max(auto_rates)),
            "ok": max(auto_rates) >= TARGET_PER_S,
            "live": live,
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
    auto = result.get("automatic")
    if auto is not None:
        table = Table(title="automatic hunt (SCAMWATCH_RETROHUNT_SECONDS), one process")
        for column in ("events", "events/s (best)", "runs", "target"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{auto['events']:,}", f"{auto['best_per_s']:,}",
            ", ".join(f"{r:,}" for r in auto["rates"]),
            f"≥ {TARGET_PER_S:,} {'✓' if auto['ok'] else '✗'}",
        )  # fmt: skip
        console.print(table)
        lv = auto["live"]
        table = Table(title="a worker's live path, backlog drained, same run")
        for column in ("backlog", "no hunt /s", "hunt running /s", "ratio", "hunt /s meanwhile"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{lv['live_events']:,}", f"{lv['live_per_s_no_hunt']:,}",
            f"{lv['live_per_s_with_hunt']:,}", f"{lv['ratio']:.2f}",
            f"{lv['hunt_per_s_during']:,} (rate {lv['rate_setting']:,})",
        )  # fmt: skip
        console.print(table)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
