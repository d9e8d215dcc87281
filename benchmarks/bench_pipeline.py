"""Pipeline benchmark: real Kafka, one ``scamwatch worker`` subprocess, 1M indicators in Redis.

    .venv/bin/python benchmarks/bench_pipeline.py [--indicators N] [--events N]
        [--rate R] [--latency-events N] [--partitions P]

Measured in one run, on topics, a consumer group and a Redis prefix of the run's own
(all removed afterwards):

1. ``--indicators`` synthetic indicators (default 1,000,000: phones, number blocks, domains,
   URLs, keywords) plus the bundled sample feeds, bulk-loaded with ``engine.store.loading``;
2. ``--events`` events (default 200,000; half calls, half web, ~20 % alerting, ~2 %
   malformed, from the seeded sample-traffic generator) pre-filled into the input topics;
3. **pass-through ceiling**: a bare aiokafka consumer → producer copying those events to
   another topic (no decoding), in this process, with nothing else running;
4. **sustained throughput**: the worker starts on the pre-filled topics; events/s from the
   input topics to verdicts (the worker's ``scamwatch_events_total``, scraped from its
   /metrics), steady state between 10 % and 90 % of the events;
5. **latency at a fixed offered rate** (``--rate``, default 5,000 events/s, for
   ``--latency-events``): each event stamped with its send time; event ``ts`` → alert
   arrival at a consumer here, for the alerting events (p50/p99), and the worker's own
   ``scamwatch_event_latency_seconds`` histogram (event ts → verdict, every event);
   when that rate is above the worker's measured capacity (its queue then only grows),
   once more at half the capacity, to show the latency of an unsaturated pipeline.

Prints a table, writes ``benchmarks/results/bench_pipeline.json`` and a PNG plot beside it.
Targets (DESIGN.md): ≥ 10k events/s sustained, p99 ≤ 250 ms at 5k/s offered, ≥ 50 % of the
pass-through. Bounded: every wait has a deadline; the whole run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from engine.core.events import event_ts_ms
from engine.core.models import Indicator, IndicatorType, Severity
from engine.devtools.demo import WorkerProcess, start_worker, wait_worker_ready
from engine.devtools.samples import load_sample_feeds
from engine.devtools.scrape import scrape_metrics
from engine.devtools.traffic import TrafficIndicators, generate, sample_snapshot
from engine.kafka_io import (
    TokenBucket,
    delete_topics,
    ensure_topics,
    event_key,
    iter_records,
    make_producer,
    replay_lines,
)
from engine.settings import Settings, load_settings
from engine.store.loading import load_items
from engine.store.redis import RedisStore

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_EVENTS_S = 10_000.0
TARGET_P99_MS = 250.0
TARGET_RATIO = 0.5
SCRAPE_EVERY_S = 0.5  # each scrape costs the worker a few ms of CPU: not too often
console = Console()


# ------------------------------------------------------------------------------ inputs


def synthetic_indicators(count: int, seed: int) -> Iterator[Indicator]:
    """``count`` normalized indicators in a realistic mix (seeded): 55 % phones, 5 % number
    blocks, 30 % domains, 9.5 % URLs, 0.5 % keywords."""
    rng = random.Random(seed)
    words = (
        "secure",
        "help",
        "support",
        "billing",
        "refund",
        "alert",
        "desk",
        "care",
        "tech",
        "fix",
        "pc",
        "renew",
        "account",
        "center",
        "online",
        "service",
    )
    tlds = ("com", "net", "info", "xyz", "online", "site", "support", "top")
    for n in range(count):
        pick = rng.random()
        if pick < 0.55:
            value = f"+1{rng.randint(200, 999)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            type_ = IndicatorType.PHONE
        elif pick < 0.60:
            value = f"+1{rng.randint(200, 999)}{rng.randint(200, 999)}{rng.randint(0, 99):02d}"
            type_ = IndicatorType.PHONE_PREFIX
        elif pick < 0.90:
            value = f"{rng.choice(words)}-{rng.choice(words)}-{n:x}.{rng.choice(tlds)}"
            type_ = IndicatorType.DOMAIN
        elif pick < 0.995:
            value = f"{rng.choice(words)}{n:x}.{rng.choice(tlds)}/{rng.choice(words)}/{n % 997}"
            type_ = IndicatorType.URL
        else:
            value = f"{rng.choice(words)}-{rng.choice(words)}-desk{n:x}"
            type_ = IndicatorType.KEYWORD
        yield Indicator(
            type_,
            value,
            sources=("bench-synthetic",),
            severity=Severity.HIGH,
            confidence=rng.randint(40, 100),
        )


def load_indicators(settings: Settings, prefix: str, count: int, seed: int) -> dict[str, float]:
    """The sample feeds and ``count`` synthetic indicators into Redis under ``prefix``."""
    store = RedisStore.from_url(settings.redis.url.get_secret_value(), prefix=prefix)
    try:
        load_sample_feeds(store)
        started = time.monotonic()
        result = load_items(synthetic_indicators(count, seed), store).result
        elapsed = time.monotonic() - started
    finally:
        store.close()
    return {
        "seconds": elapsed,
        "added": float(result.added),
        "per_s": result.added / elapsed if elapsed else 0.0,
    }


def event_pool(seed: int) -> tuple[list[bytes], list[bytes]]:
    """Sample call and web events from the traffic generator (truth not needed here)."""
    facts = TrafficIndicators.from_snapshot(sample_snapshot(), int(time.time() * 1000))
    traffic = generate(facts, calls=2000, web=2000, seed=seed)
    return list(traffic.calls), list(traffic.web)


def restamp(line: bytes, tag: str, copy: int, ts_ms: int | None = None) -> bytes:
    """A pool line as a new event: event id ``<tag><id>-<copy>`` (and ``ts`` when given);
    non-JSON and malformed lines are sent as they are (the worker dead-letters them)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(record, dict) or not isinstance(record.get("event_id"), str):
        return line
    record["event_id"] = f"{tag}{record['event_id']}-{copy}"
    if ts_ms is not None:
        record["ts"] = ts_ms
    return orjson.dumps(record)


_TS_SLOT = 1_111_111_111_111  # a stand-in ts, replaced by the send time in each template


def latency_templates(
    calls: list[bytes], web: list[bytes], topics: dict[str, str], tag: str
) -> list[tuple[str, bytes | None, bytes, bool]]:
    """``(topic, key, line, is_template)`` per pool line; a template takes ``% (copy, ts_ms)``
    so the paced loop only formats bytes (its own CPU must not limit the offered rate)."""
    out: list[tuple[str, bytes | None, bytes, bool]] = []
    for topic, pool in ((topics["calls"], calls), (topics["web"], web)):
        for line in pool:
            stamped = restamp(line, tag, 0, _TS_SLOT)
            if stamped == line:  # not JSON or no event id: sent as it is
                out.append((topic, None, line, False))
                continue
            key = event_key(orjson.loads(stamped))
            # event_id is the first field, so its "-0" suffix is the first one
            template = stamped.replace(b"%", b"%%").replace(b'-0"', b'-%d"', 1)
            out.append((topic, key, template.replace(str(_TS_SLOT).encode(), b"%d", 1), True))
    random.Random(7).shuffle(out)
    return out


def events_for(pool: list[bytes], count: int, tag: str) -> Iterator[tuple[bytes, int]]:
    for i in range(count):
        line = restamp(pool[i % len(pool)], tag, i // len(pool))
        yield line, len(line) + 1


# ------------------------------------------------------------------------------ metrics


def scrape(port: int) -> dict[str, Any] | None:
    """Events by outcome and the latency histogram buckets (cumulative) from /metrics."""
    try:
        metrics = scrape_metrics(port, timeout=2)
    except OSError:
        return None
    by_le = metrics.by_label("scamwatch_event_latency_seconds_bucket", "le")
    return {
        "events": metrics.total("scamwatch_events_total"),
        "buckets": {float(le): count for le, count in by_le.items()},
    }


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """The q-quantile (seconds) of what was observed between two scrapes, interpolated
    linearly inside its bucket (as Prometheus' histogram_quantile does)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, prev = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if bound == float("inf"):
                return lower
            inside = cum - prev
            return lower + (bound - lower) * ((rank - prev) / inside if inside else 0.0)
        lower, prev = bound, cum
    return lower


def wait_events(
    port: int,
    target: float,
    timeout: float,
    samples: list[tuple[float, float]],
    proc: psutil.Process | None = None,
    cpu: list[float] | None = None,
) -> float:
    """Scrape until the worker has counted ``target`` events; returns the count reached.
    With ``proc``, ``cpu`` gets the worker's CPU seconds at each sample."""
    deadline = time.monotonic() + timeout
    count = 0.0
    while time.monotonic() < deadline:
        got = scrape(port)
        if got is not None:
            count = got["events"]
            samples.append((time.monotonic(), count))
            if proc is not None and cpu is not None:
                times = proc.cpu_times()
                cpu.append(times.user + times.system)
            if count >= target:
                break
        time.sleep(SCRAPE_EVERY_S)
    return count


def steady_rate(samples: list[tuple[float, float]], total: float) -> tuple[float, float]:
    """(steady events/s between 10 % and 90 % of ``total``, overall events/s from the first
    counted event to the last)."""

    def first_at(level: float) -> tuple[float, float]:
        return next(s for s in samples if s[1] >= level)

    lo, hi = first_at(0.1 * total), first_at(0.9 * total)
    start = next(s for s in samples if s[1] > 0)
    end = first_at(total)
    steady = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else float("nan")
    overall = (end[1] - start[1]) / (end[0] - start[0]) if end[0] > start[0] else float("nan")
    return steady, overall


# ------------------------------------------------------------------------------ phases


async def prefill(
    settings: Settings, topics: dict[str, str], calls: list[bytes], web: list[bytes], count: int
) -> float:
    producer = await make_producer(settings.kafka)
    try:
        started = time.monotonic()
        await asyncio.gather(
            replay_lines(
                events_for(calls, count // 2, "s"),
                topic=topics["calls"],
                kafka=settings.kafka,
                producer=producer,
            ),
            replay_lines(
                events_for(web, count - count // 2, "s"),
                topic=topics["web"],
                kafka=settings.kafka,
                producer=producer,
            ),
        )
        return count / (time.monotonic() - started)
    finally:
        await producer.stop()


async def pass_through(
    settings: Settings,
    topics: dict[str, str],
    count: int,
    group: str,
    samples: list[tuple[float, float]],
) -> float:
    """Copy ``count`` records from the input topics to a sink topic: consume, produce, ack."""
    consumer = AIOKafkaConsumer(
        topics["calls"],
        topics["web"],
        **settings.kafka.client_options(),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    producer = await make_producer(settings.kafka, client_id="bench-pass-through")
    await consumer.start()
    done = 0
    started: float | None = None
    try:
        deadline = time.monotonic() + 300
        pending: list[asyncio.Future[Any]] = []
        while done < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    if started is None:
                        started = time.monotonic()
                        samples.append((0.0, 0.0))
                    pending.append(
                        await producer.send(topics["sink"], record.value, key=record.key)
                    )
                    done += 1
            if started is not None:
                samples.append((time.monotonic() - started, float(done)))
            if len(pending) > 10_000:
                await asyncio.gather(*pending)
                pending.clear()
                await consumer.commit()
        await producer.flush()
        await asyncio.gather(*pending)
        await consumer.commit()
        elapsed = time.monotonic() - (started or time.monotonic())
        samples.append((elapsed, float(done)))
    finally:
        await consumer.stop()
        await producer.stop()
    if done < count:
        raise RuntimeError(f"pass-through copied only {done} of {count} records in 300 s")
    return done / elapsed


@dataclass
class LatencyRun:
    offered: float = 0.0
    sent: int = 0
    alert_ms: list[float] = field(default_factory=list)


async def latency_phase(
    settings: Settings,
    topics: dict[str, str],
    calls: list[bytes],
    web: list[bytes],
    rate: float,
    count: int,
    port: int,
    drain_s: float,
    tag: str,
) -> tuple[LatencyRun, dict[str, Any], dict[str, Any]]:
    """Offer ``count`` events at ``rate``/s (each stamped with its send time); time each
    alert's arrival. Returns the run and the /metrics scrapes before and after."""
    run = LatencyRun()
    caught_up = asyncio.Event()
    last = time.monotonic()

    async def collect() -> None:
        nonlocal last
        async for _, value in iter_records(settings.kafka, [topics["alerts"]], from_beginning=True):
            now = time.time() * 1000
            last = time.monotonic()
            alert = orjson.loads(value)
            if str(alert.get("event_id", "")).startswith(tag) and alert.get("rule"):
                run.alert_ms.append(now - event_ts_ms(alert["event_ts"]))

    async def watch_idle() -> None:
        # polls the time of the last alert read: idle for 1.5 s means the backlog is read
        while time.monotonic() - last < 1.5:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        caught_up.set()

    collector = asyncio.create_task(collect())
    await asyncio.wait_for(watch_idle(), timeout=120)  # old alerts read: now at the end
    await caught_up.wait()
    before = scrape(port) or {"events": 0.0, "buckets": {}}
    producer = await make_producer(settings.kafka, linger_ms=1)
    templates = latency_templates(calls, web, topics, tag)
    started = time.monotonic()
    try:
        bucket = TokenBucket(rate, burst=max(1.0, rate / 50))
        for i in range(count):
            topic, key, line, is_template = templates[i % len(templates)]
            await bucket.take()
            value = line % (i, int(time.time() * 1000)) if is_template else line
            await producer.send(topic, value, key=key)
            run.sent += 1
        await producer.flush()
        run.offered = count / (time.monotonic() - started)
    finally:
        await producer.stop()
    samples: list[tuple[float, float]] = []
    target = before["events"] + count
    await asyncio.to_thread(wait_events, port, target, drain_s, samples)
    after = scrape(port) or before
    await asyncio.sleep(1.0)  # the last alerts reach the consumer
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    return run, before, after


# ------------------------------------------------------------------------------ report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(
    run: LatencyRun, before: dict[str, Any], after: dict[str, Any]
) -> dict[str, float]:
    ms = run.alert_ms
    return {
        "offered_per_s": run.offered,
        "events": float(run.sent),
        "alerts_timed": float(len(ms)),
        "alert_p50_ms": pct(ms, 0.50),
        "alert_p99_ms": pct(ms, 0.99),
        "alert_max_ms": max(ms) if ms else float("nan"),
        "alert_mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "verdict_p50_ms": 1000 * histogram_quantile(0.5, before["buckets"], after["buckets"]),
        "verdict_p99_ms": 1000 * histogram_quantile(0.99, before["buckets"], after["buckets"]),
    }


def plot(
    results: dict[str, Any],
    worker_samples: list[tuple[float, float]],
    pass_samples: list[tuple[float, float]],
    latency_runs: list[tuple[str, list[float]]],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if worker_samples:
        t0 = next(t for t, c in worker_samples if c > 0)
        left.plot(
            [t - t0 for t, _ in worker_samples if t >= t0 - 0.5],
            [c for t, c in worker_samples if t >= t0 - 0.5],
            label="scamwatch worker",
        )
    left.plot(
        [t for t, _ in pass_samples],
        [c for _, c in pass_samples],
        label="bare aiokafka pass-through",
        linestyle="--",
    )
    left.set_xlabel("seconds")
    left.set_ylabel("events done")
    left.set_title(f"pre-filled topic, {results['params']['indicators']:,} indicators")
    left.legend()
    for label, values in latency_runs:
        if values:
            ordered = sorted(values)
            n = len(ordered)
            right.step(
                ordered,
                [(i + 1) / n for i in range(n)],
                where="post",
                label=f"{label}: p50 {pct(values, 0.5):.0f} ms, p99 {pct(values, 0.99):.0f} ms",
            )
    right.axvline(
        TARGET_P99_MS, color="red", linestyle="--", label=f"target p99 {TARGET_P99_MS:.0f} ms"
    )
    right.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    right.set_xscale("log")
    right.set_xlabel("event ts → alert received (ms, log scale)")
    right.set_ylabel("fraction of alerts")
    right.set_title("latency (CDF)")
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"scamwatch pipeline benchmark, {results['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _git_head() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--latency-events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "bench_pipeline.json")
    parser.add_argument("--code", default=None, help="What code was measured (default: git HEAD).")
    args = parser.parse_args()

    settings = load_settings()
    run = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
    topics = {
        name: f"bench-{run}-{name}" for name in ("calls", "web", "alerts", "deadletter", "sink")
    }
    prefix = f"scamwatch-bench:{run}:"
    workdir = Path(tempfile.mkdtemp(prefix="scamwatch-bench-"))
    worker: WorkerProcess | None = None
    began = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "load_average_at_start": os.getloadavg()[0],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "code": args.code or _git_head(),
        "params": vars(args) | {"output": str(args.output)},
    }
    worker_samples: list[tuple[float, float]] = []
    pass_samples: list[tuple[float, float]] = []
    try:
        console.print(f"[bold]1.[/] loading {args.indicators:,} indicators into Redis ...")
        results["load"] = load_indicators(settings, prefix, args.indicators, args.seed)
        console.print(f"   {results['load']['seconds']:.1f} s ({results['load']['per_s']:,.0f}/s)")

        console.print(f"[bold]2.[/] pre-filling {args.events:,} events ...")
        calls, web = event_pool(args.seed)
        asyncio.run(
            ensure_topics(settings.kafka, list(topics.values()), partitions=args.partitions)
        )
        results["prefill_per_s"] = asyncio.run(prefill(settings, topics, calls, web, args.events))
        console.print(f"   {results['prefill_per_s']:,.0f} events/s produced")

        console.print("[bold]3.[/] bare aiokafka pass-through (the ceiling) ...")
        results["pass_through_per_s"] = asyncio.run(
            pass_through(settings, topics, args.events, f"bench-{run}-pass", pass_samples)
        )
        console.print(f"   {results['pass_through_per_s']:,.0f} events/s")

        console.print("[bold]4.[/] worker on the pre-filled topics ...")
        started = time.monotonic()
        worker = start_worker(
            {
                "SCAMWATCH_TOPIC_CALLS": topics["calls"],
                "SCAMWATCH_TOPIC_WEB": topics["web"],
                "SCAMWATCH_TOPIC_ALERTS": topics["alerts"],
                "SCAMWATCH_TOPIC_DEADLETTER": topics["deadletter"],
                "SCAMWATCH_APP_ID": f"bench-{run}",
                "SCAMWATCH_REDIS_PREFIX": prefix,
                "SCAMWATCH_STATE_DIR": str(workdir / "state"),
                "SCAMWATCH_SNAPSHOT_WAIT_SECONDS": "120",
            },
            workdir / "worker.log",
        )
        wait_worker_ready(worker, timeout=60)
        cpu: list[float] = []
        proc = psutil.Process(worker.proc.pid)
        reached = wait_events(worker.metrics_port, args.events, 360, worker_samples, proc, cpu)
        if reached < args.events:
            raise RuntimeError(
                f"the worker counted {reached:.0f} of {args.events} events in "
                f"time; its log ({worker.log_path}):\n{worker.log_tail()}"
            )
        first = next(t for t, c in worker_samples if c > 0)
        results["worker_start_s"] = first - started
        steady, overall = steady_rate(worker_samples, args.events)
        results["worker_steady_per_s"] = steady
        results["worker_overall_per_s"] = overall
        results["ratio_to_pass_through"] = steady / results["pass_through_per_s"]
        # how busy the worker was in the steady window (1.0 = one core): CPU-bound or waiting
        lo = next(i for i, (_, c) in enumerate(worker_samples) if c >= 0.1 * args.events)
        hi = next(i for i, (_, c) in enumerate(worker_samples) if c >= 0.9 * args.events)
        span = worker_samples[hi][0] - worker_samples[lo][0]
        results["worker_cpu_cores"] = (cpu[hi] - cpu[lo]) / span if span > 0 else float("nan")
        rss = psutil.Process(worker.proc.pid)
        results["worker_rss_mib"] = (
            sum(p.memory_info().rss for p in [rss, *rss.children(recursive=True)]) / 2**20
        )
        console.print(
            f"   first verdict {results['worker_start_s']:.1f} s after start "
            f"(snapshot + build); {steady:,.0f} events/s steady"
        )

        console.print(f"[bold]5.[/] latency at {args.rate:,.0f} events/s offered ...")
        lat, before, after = asyncio.run(
            latency_phase(
                settings,
                topics,
                calls,
                web,
                args.rate,
                args.latency_events,
                worker.metrics_port,
                drain_s=180,
                tag="lat-a-",
            )
        )
        results["latency"] = latency_summary(lat, before, after)
        latency_runs = [(f"{lat.offered:,.0f} ev/s offered", lat.alert_ms)]
        if steady < args.rate:
            # above capacity the queue grows and latency with it; below it shows the floor
            low_rate = max(100.0, round(0.5 * steady, -2))
            console.print(
                f"[bold]5b.[/] {args.rate:,.0f}/s is above the worker's capacity: latency "
                f"again at {low_rate:,.0f} events/s (half of it) ..."
            )
            low, before, after = asyncio.run(
                latency_phase(
                    settings,
                    topics,
                    calls,
                    web,
                    low_rate,
                    int(low_rate * 8),
                    worker.metrics_port,
                    drain_s=120,
                    tag="lat-b-",
                )
            )
            results["latency_below_capacity"] = latency_summary(low, before, after)
            latency_runs.append((f"{low.offered:,.0f} ev/s (below capacity)", low.alert_ms))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        results["elapsed_s"] = time.monotonic() - began
        results["machine"]["load_average_at_end"] = os.getloadavg()[0]
        results["targets"] = {
            "events_per_s": {
                "target": TARGET_EVENTS_S,
                "ok": results["worker_steady_per_s"] >= TARGET_EVENTS_S,
            },
            "p99_ms": {
                "target": TARGET_P99_MS,
                "ok": results["latency"]["alert_p99_ms"] <= TARGET_P99_MS,
            },
            "ratio": {
                "target": TARGET_RATIO,
                "ok": results["ratio_to_pass_through"] >= TARGET_RATIO,
            },
        }
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        png = args.output.with_suffix(".png")
        plot(results, worker_samples, pass_samples, latency_runs, png)
        console.print(report_table(results))
        console.print(f"results: {args.output}, plot: {png}")
        return 0
    finally:
        if worker is not None:
            worker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        asyncio.run(
            delete_topics(settings.kafka, [*topics.values(), f"bench-{run}-__assignor-__leader"])
        )
        client = redis.Redis.from_url(settings.redis.url.get_secret_value())
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def report_table(r: dict[str, Any]) -> Table:
    def mark(ok: bool) -> str:
        return "[green]yes[/]" if ok else "[red]no[/]"

    t = Table(
        title=f"pipeline benchmark, {r['date']}, {r['machine']['cpus']} CPUs, code {r.get('code')}",
        title_justify="left",
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_column("met", justify="center")
    lat = r["latency"]
    tg = r["targets"]
    t.add_row(
        "indicators loaded (bulk upsert)",
        f"{r['params']['indicators']:,} in {r['load']['seconds']:.1f} s",
        "",
        "",
    )
    t.add_row("worker start → first verdict", f"{r['worker_start_s']:.1f} s", "", "")
    t.add_row("worker memory (RSS)", f"{r['worker_rss_mib']:,.0f} MiB", "", "")
    t.add_row("worker CPU (steady window)", f"{r['worker_cpu_cores']:.2f} cores", "", "")
    t.add_row("bare aiokafka pass-through", f"{r['pass_through_per_s']:,.0f} ev/s", "", "")
    t.add_row(
        "worker sustained (10-90 %)",
        f"{r['worker_steady_per_s']:,.0f} ev/s",
        f"≥ {TARGET_EVENTS_S:,.0f}",
        mark(tg["events_per_s"]["ok"]),
    )
    t.add_row("worker overall (first → last)", f"{r['worker_overall_per_s']:,.0f} ev/s", "", "")
    t.add_row(
        "worker / pass-through",
        f"{r['ratio_to_pass_through']:.0%}",
        f"≥ {TARGET_RATIO:.0%}",
        mark(tg["ratio"]["ok"]),
    )
    t.add_row("offered rate (latency run)", f"{lat['offered_per_s']:,.0f} ev/s", "", "")
    t.add_row("event ts → alert received p50", f"{lat['alert_p50_ms']:.0f} ms", "", "")
    t.add_row(
        "event ts → alert received p99",
        f"{lat['alert_p99_ms']:.0f} ms",
        f"≤ {TARGET_P99_MS:.0f} ms",
        mark(tg["p99_ms"]["ok"]),
    )
    t.add_row(
        "event ts → verdict p50 / p99 (worker histogram)",
        f"{lat['verdict_p50_ms']:.0f} / {lat['verdict_p99_ms']:.0f} ms",
        "",
        "",
    )
    low = r.get("latency_below_capacity")
    if low:
        t.add_row(
            f"below capacity, at {low['offered_per_s']:,.0f} ev/s: alert p50 / p99",
            f"{low['alert_p50_ms']:.0f} / {low['alert_p99_ms']:.0f} ms",
            "",
            "",
        )
    t.add_row("whole run", f"{r['elapsed_s']:.0f} s", "", "")
    m = r["machine"]
    t.add_row(
        "load average (1 min) start / end",
        f"{m['load_average_at_start']:.1f} / {m['load_average_at_end']:.1f}",
        "",
        "",
    )
    return t


if __name__ == "__main__":
    sys.exit(main())
