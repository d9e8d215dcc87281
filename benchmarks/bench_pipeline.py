"""Pipeline benchmark: real Kafka, 1M indicators in Redis, every data path in ONE run.

    .venv/bin/python benchmarks/bench_pipeline.py [--quick] [--indicators N] [--events N]
        [--latency-seconds S] [--rate R] [--partitions P] [--paths a,b,...]
    .venv/bin/python benchmarks/bench_pipeline.py --replot RESULTS.json  # its PNG again

On topics, consumer groups and a Redis prefix of the run's own (all removed afterwards):

1. ``--indicators`` synthetic indicators (default 1,000,000: phones, number blocks, domains,
   URLs, keywords) plus the bundled sample feeds, bulk-loaded with ``engine.store.loading``;
2. ``--events`` events (default 200,000; half calls, half web, ~20 % alerting, ~2 %
   malformed, from the seeded sample-traffic generator) pre-filled into the input topics,
   each dated when it is written (as live events are: exposures open, journeys and
   sightings happen, as in the latency runs);
3. then, one after the other, each on the same pre-filled topics (its own consumer group,
   its own output topics), nothing else of the run running meanwhile:

   - ``pass_through``: a bare aiokafka consumer → producer copying the records to a sink
     topic (no decoding), in a process of its own: the ceiling;
   - ``inline``: ``scamwatch worker`` (the default data path);
   - ``agents``: ``SCAMWATCH_DATA_PATH=agents`` (plain Faust agents);
   - ``processes_2``: ``scamwatch worker --processes 2`` (inline, two processes);
   - ``gc_freeze_off``: the inline worker with ``SCAMWATCH_GC_FREEZE=false`` (the
     collector as Python has it: the pauses before the fix);
   - ``hunt_running``: the inline worker with ``SCAMWATCH_RETROHUNT_SECONDS`` on; once it
     has matched the pre-filled events, every bundled sample indicator is changed in the
     store, so its automatic hunt reads them all again at the default
     ``SCAMWATCH_RETROHUNT_RATE`` while its latency is measured (its sustained rate is the
     drain before the hunt; ``bench_hunt.py`` has the drain with one running); the events
     hunted in that time show it ran throughout;
   - ``stateful_off`` / ``stateful_on``: the inline worker with the stateful side off
     (``SCAMWATCH_PROTECTION=false``, ``SCAMWATCH_DISCOVERY=off``: no exposures, journeys,
     sightings, suppression or discovery) and on (journeys, sightings, suppression at its
     default 600 s, the ``discover`` agent), each with a sightings topic of its own; the
     pool's web alerts expose its subscribers, so most calls are journeys or sightings;
   - ``stateful_unsuppressed``: on, but suppression off (the pool's events repeat, so with
     suppression on most of their alerts are folded and the worker sends far fewer: this
     row is the stateful side's cost at the same output);
   - ``stateful_off_population`` / ``stateful_on_population``: off, and on as deployed
     (suppression 600 s, discovery ``alert``), on the same events with their subscribers
     drawn from ``--subscribers`` (default 1,000,000; topics pre-filled for these rows
     only): a call is a journey or a sighting as often as its subscriber saw a scam page,
     where the pool's 120 subscribers are all exposed within its first events (the rows
     above: a worst case). Each row reports its sightings and journeys per input event;
   - ``live_updates``: the inline worker while this process adds one new phone indicator
     to the store every second (``--change-every``), in every other window of
     ``--live-window`` seconds (default 3; 0: all the time): its rate in the windows with
     changes against the windows without on either side, in one run of one worker (the
     drift between rows of one configuration here is larger than the effect), and the
     worker's own cost per change (``scamwatch_matcher_update_seconds`` over
     ``scamwatch_matcher_changes_applied_total``; full builds counted);

   for each: **sustained events/s** (input topics → verdicts, the worker's
   ``scamwatch_events_total``; steady state between 10 % and 90 % of the records),
   **CPU** (cores used in that window, the whole process tree), memory; then
   **latency at half of the inline worker's measured capacity** (``--rate`` overrides) for
   ``--latency-seconds``: each event stamped with its send time, event ``ts`` → alert
   received here for the alerting events (for the pass-through: → copy received, every
   event), p50/p99/max, and the worker's own ``scamwatch_event_latency_seconds`` histogram.

Prints a table, writes ``benchmarks/results/bench_pipeline.json`` and a PNG beside it
(throughput bars, latency CDF per path). ``--quick`` (50k indicators, 30k events, 5 s of
latency; results to the temp directory) runs in a few minutes, to try a change.
Targets (DESIGN.md): inline ≥ 50 % of the pass-through; p99 ≤ 100 ms at half capacity;
``--processes 2`` ≥ 1.5× one process; the stateful side on costs ≤ 10 % of the throughput
with it off; with one change a second ≥ 90 % of the steady throughput, ≤ 50 ms of worker
CPU per change. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Protocol

import orjson
import psutil
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from engine.core.events import event_ts_ms
from engine.core.models import Indicator, IndicatorType, Severity
from engine.core.records import Alert
from engine.core.timestamps import format_rfc3339
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
TARGET_RATIO = 0.5  # inline ÷ pass-through
TARGET_P99_MS = 100.0  # at half of the inline worker's capacity
TARGET_SCALE = 1.5  # --processes 2 ÷ one process
TARGET_STATEFUL = 0.9  # stateful side on ÷ off
TARGET_LIVE = 0.9  # with one change a second ÷ without
TARGET_CHANGE_MS = 50.0  # worker CPU per change
HUNT_LOOKBACK_S = 86_400  # hunt_running: SCAMWATCH_RETROHUNT_SECONDS (all the pre-filled events)
SCRAPE_EVERY_S = 0.5  # each scrape costs the worker a few ms of CPU: not too often
SETTLE_S = 0.6  # live_updates: the start of a window left out (the follower polls each 0.5 s)
console = Console(width=None if sys.stdout.isatty() else 160)  # a log keeps the whole table


@dataclass(frozen=True)
class PathSpec:
    """One way of running the pipeline that the benchmark measures."""

    key: str
    label: str
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    latency: bool = True  # its latency measured too (at half of inline's capacity)
    changes: bool = False  # one indicator change a second while it runs
    # an automatic hunt of the pre-filled events (matched live first) running in the worker
    # while its latency is measured
    hunt: bool = False
    # its inputs: the pool's 120 subscribers ("pool", every one soon exposed) or the same
    # events with subscribers drawn from --subscribers ("population", as live traffic is)
    inputs: str = "pool"


PASS_THROUGH = PathSpec("pass_through", "bare aiokafka pass-through")
PATHS = (
    PASS_THROUGH,
    PathSpec("inline", "inline worker (default)", {"SCAMWATCH_DATA_PATH": "inline"}),
    PathSpec("agents", "agents worker", {"SCAMWATCH_DATA_PATH": "agents"}),
    PathSpec(
        "processes_2",
        "inline, --processes 2",
        {"SCAMWATCH_DATA_PATH": "inline"},
        ("--processes", "2"),
    ),
    PathSpec(
        "gc_freeze_off",
        "inline, gc.freeze off (before the fix)",
        {"SCAMWATCH_DATA_PATH": "inline", "SCAMWATCH_GC_FREEZE": "false"},
    ),
    PathSpec(
        "hunt_running",
        "inline, an automatic hunt running",
        {"SCAMWATCH_DATA_PATH": "inline", "SCAMWATCH_RETROHUNT_SECONDS": str(HUNT_LOOKBACK_S)},
        hunt=True,
    ),
    PathSpec(
        "stateful_off",
        "inline, stateful side off",
        {
            "SCAMWATCH_DATA_PATH": "inline",
            "SCAMWATCH_PROTECTION": "false",
            "SCAMWATCH_DISCOVERY": "off",
        },
        latency=False,
    ),
    PathSpec(
        "stateful_on",
        "inline, stateful side on (journeys, suppression, discovery)",
        {
            "SCAMWATCH_DATA_PATH": "inline",
            "SCAMWATCH_SUPPRESS_SECONDS": "600",
            "SCAMWATCH_DISCOVERY": "alert",
        },
        latency=False,
    ),
    PathSpec(
        "stateful_unsuppressed",
        "inline, stateful side on, suppression off",
        {
            "SCAMWATCH_DATA_PATH": "inline",
            "SCAMWATCH_SUPPRESS_SECONDS": "0",
            "SCAMWATCH_DISCOVERY": "alert",
        },
        latency=False,
    ),
    PathSpec(
        "stateful_off_population",
        "inline, stateful side off, --subscribers population",
        {
            "SCAMWATCH_DATA_PATH": "inline",
            "SCAMWATCH_PROTECTION": "false",
            "SCAMWATCH_DISCOVERY": "off",
        },
        latency=False,
        inputs="population",
    ),
    PathSpec(
        "stateful_on_population",
        "inline, stateful side on (as deployed), --subscribers population",
        {
            "SCAMWATCH_DATA_PATH": "inline",
            "SCAMWATCH_SUPPRESS_SECONDS": "600",
            "SCAMWATCH_DISCOVERY": "alert",
        },
        latency=False,
        inputs="population",
    ),
    PathSpec(
        "live_updates",
        "inline, one indicator change a second",
        {"SCAMWATCH_DATA_PATH": "inline"},
        latency=False,
        changes=True,
    ),
)


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


def restamp(
    line: bytes, tag: str, copy: int, ts_ms: int | None = None, subscriber: str | None = None
) -> bytes:
    """A pool line as a new event: event id ``<tag><id>-<copy>`` (and ``ts``, and the
    ``subscriber_id`` of an event that has one, when given); non-JSON and malformed lines
    are sent as they are (the worker dead-letters them)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(record, dict) or not isinstance(record.get("event_id"), str):
        return line
    record["event_id"] = f"{tag}{record['event_id']}-{copy}"
    if ts_ms is not None:
        record["ts"] = ts_ms
    if subscriber is not None and isinstance(record.get("subscriber_id"), str):
        record["subscriber_id"] = subscriber
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


def events_for(
    pool: list[bytes], count: int, tag: str, subscribers: Population | None = None
) -> Iterator[tuple[bytes, int]]:
    """The pool's lines as ``count`` new events, each dated when it is made: the pool's own
    dates are the generator's (2026-01-01), so their exposures would be long closed and
    the stateful side would do no journeys or sightings, as it does on live traffic.

    With ``subscribers`` (a seeded draw of ids), each event that has a subscriber gets one
    of the population instead of the pool's: the pool has 120 subscribers, so its first web
    alerts expose nearly all of them and most later calls become journeys or sightings, a
    worst case; drawn from a population as large as a telecom's, a call is a journey or a
    sighting about as often as its subscriber saw a scam page."""
    for i in range(count):
        subscriber = None if subscribers is None else subscribers.draw()
        line = restamp(
            pool[i % len(pool)], tag, i // len(pool), int(time.time() * 1000), subscriber
        )
        yield line, len(line) + 1


def exposing_alerts(pools: Sequence[list[bytes]], ts_ms: int) -> Iterator[tuple[bytes, int]]:
    """One web alert (alert.v1, dated ``ts_ms``) for each subscriber of the pools' events:
    written to a stateful row's ``alerts`` before its worker starts, so the worker's exposure
    reader finds every subscriber exposed before it reads an input. Without them, which calls
    were an exposed subscriber's depended on the order in which the worker happened to read
    the pre-filled calls and web (in chunks of either): rows of one configuration made
    0.04-0.34 sightings per event (2026-12-03). With them, every row does the same worst
    case: each call of the pool to an unknown number a sighting, to a scam one a journey."""
    when = format_rfc3339(ts_ms)
    indicator = {
        "type": "domain",
        "value": "bench-exposure.example",
        "sources": ["bench"],
        "severity": "high",
        "confidence": 80,
        "tags": [],
        "valid_until": None,
    }
    seen: set[tuple[str, str]] = set()
    for pool in pools:
        for line in pool:
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    continue
                who = (record.get("partner_id"), record.get("subscriber_id"))
                if not all(isinstance(x, str) for x in who) or who in seen:
                    continue
                seen.add(who)  # type: ignore[arg-type]
                partner, subscriber = who
                alert = Alert.from_dict(
                    {
                        "alert_id": f"bench-exposure-{partner}-{subscriber}",
                        "ts": when,
                        "event_ts": when,
                        "stream": "web",
                        "rule": "host_scam_domain",
                        "severity": "high",
                        "partner_id": partner,
                        "subscriber_id": subscriber,
                        "event_id": f"bench-exposure-{len(seen)}",
                        "matches": [
                            {
                                "field": "host",
                                "observed": indicator["value"],
                                "normalized": indicator["value"],
                                "indicator": indicator,
                            }
                        ],
                        "event": {},
                        "source": {"topic": "bench", "partition": 0, "offset": len(seen)},
                        "engine": {"version": "bench", "indicator_version": 0},
                    }
                )
                value = alert.to_json()
                yield value, len(value) + 1


def input_topics(topics: dict[str, str], inputs: str) -> tuple[str, str]:
    """The calls and web topics of the rows on ``inputs`` (``PathSpec.inputs``)."""
    suffix = "" if inputs == "pool" else f"-{inputs}"
    return topics["calls" + suffix], topics["web" + suffix]


class Population:
    """Subscriber ids drawn uniformly from ``size`` (seeded)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self._rng = random.Random(seed)

    def draw(self) -> str:
        return f"pop-{self._rng.randrange(self.size)}"


async def prefill(
    settings: Settings,
    topics: dict[str, str],
    calls: list[bytes],
    web: list[bytes],
    count: int,
    population: Population | None = None,
) -> float:
    """Pre-fill the input topics (with ``population``: those of the population rows)."""
    calls_topic, web_topic = input_topics(topics, "pool" if population is None else "population")
    producer = await make_producer(settings.kafka)
    try:
        started = time.monotonic()
        await asyncio.gather(
            replay_lines(
                events_for(calls, count // 2, "s", population),
                topic=calls_topic,
                kafka=settings.kafka,
                producer=producer,
            ),
            replay_lines(
                events_for(web, count - count // 2, "s", population),
                topic=web_topic,
                kafka=settings.kafka,
                producer=producer,
            ),
        )
        return count / (time.monotonic() - started)
    finally:
        await producer.stop()


async def pre_expose(
    settings: Settings,
    topics: dict[str, str],
    paths: Sequence[PathSpec],
    calls: list[bytes],
    web: list[bytes],
    ts_ms: int,
) -> None:
    """Every pool subscriber exposed in the ``alerts`` of each worker row on the pool's
    inputs (:func:`exposing_alerts`; the population rows' subscribers are others)."""
    alerts = list(exposing_alerts([calls, web], ts_ms))  # the same for every row
    producer = await make_producer(settings.kafka)
    try:
        for spec in paths:
            if spec is PASS_THROUGH or spec.inputs != "pool":
                continue
            await replay_lines(
                alerts,
                topic=topics[f"alerts-{spec.key}"],
                kafka=settings.kafka,
                producer=producer,
            )
    finally:
        await producer.stop()


# ------------------------------------------------------------------------------ what is measured


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


class Subject(Protocol):
    """A running pipeline: how many input records it has done, its processes, its output."""

    out_topic: str

    def count(self) -> float | None: ...

    def buckets(self) -> dict[float, float] | None: ...

    def tree(self) -> list[psutil.Process]: ...

    def failed(self) -> str | None: ...

    def stop(self) -> None: ...


class WorkerSubject:
    """``scamwatch worker`` (one process or ``--processes N``), counted by its /metrics."""

    def __init__(self, worker: WorkerProcess, out_topic: str) -> None:
        self.worker = worker
        self.out_topic = out_topic
        self._root = psutil.Process(worker.proc.pid)

    def count(self) -> float | None:
        got = scrape(self.worker.metrics_port)
        return None if got is None else float(got["events"])

    def buckets(self) -> dict[float, float] | None:
        got = scrape(self.worker.metrics_port)
        return None if got is None else dict(got["buckets"])

    def tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return [self._root, *self._root.children(recursive=True)]
        return []

    def failed(self) -> str | None:
        if self.worker.proc.poll() is None:
            return None
        return (
            f"the worker exited with code {self.worker.proc.returncode}; its log "
            f"({self.worker.log_path}):\n{self.worker.log_tail()}"
        )

    def stop(self) -> None:
        self.worker.stop()


def pass_through_main(
    inputs: list[str],
    sink: str,
    group: str,
    copied: Synchronized[int],
    ready: MpEvent,
    stop: MpEvent,
) -> None:
    """The pass-through process: consume ``inputs``, produce each record to ``sink``."""
    asyncio.run(_pass_through(load_settings(), inputs, sink, group, copied, ready, stop))


async def _pass_through(
    settings: Settings,
    inputs: list[str],
    sink: str,
    group: str,
    copied: Synchronized[int],
    ready: MpEvent,
    stop: MpEvent,
) -> None:
    consumer = AIOKafkaConsumer(
        *inputs,
        **settings.kafka.client_options(),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    producer = await make_producer(settings.kafka, client_id="bench-pass-through")
    await consumer.start()
    pending: list[asyncio.Future[Any]] = []
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if consumer.assignment():
                ready.set()
            done = 0
            for records in batches.values():
                for record in records:
                    pending.append(await producer.send(sink, record.value, key=record.key))
                done += len(records)
            if done:
                with copied.get_lock():
                    copied.value += done
            if len(pending) > 10_000 or (pending and not batches):
                await asyncio.gather(*pending)  # acknowledged, then committed
                pending.clear()
                await consumer.commit()
        await producer.flush()
        await asyncio.gather(*pending)
        await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


class PassThroughSubject:
    """The bare aiokafka consume → produce copy, in a process of its own (its CPU alone)."""

    def __init__(self, inputs: list[str], sink: str, group: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.out_topic = sink
        self._copied: Synchronized[int] = ctx.Value("q", 0)
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=pass_through_main,
            args=(inputs, sink, group, self._copied, self._ready, self._stop),
            daemon=True,
        )
        self._proc.start()
        assert self._proc.pid is not None
        self._root = psutil.Process(self._proc.pid)

    def wait_ready(self, timeout: float) -> None:
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the pass-through had no partitions after {timeout:.0f} s")

    def count(self) -> float | None:
        return float(self._copied.value)

    def buckets(self) -> dict[float, float] | None:
        return None

    def tree(self) -> list[psutil.Process]:
        return [self._root] if self._proc.is_alive() else []

    def failed(self) -> str | None:
        return None if self._proc.is_alive() else f"the pass-through exited ({self._proc.exitcode})"

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)


def cpu_seconds(tree: list[psutil.Process]) -> float:
    total = 0.0
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_mib(tree: list[psutil.Process]) -> float:
    total = 0
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    count: float  # input records done
    cpu_s: float  # CPU seconds of the whole process tree


def follow(subject: Subject, total: float, timeout: float, every: float) -> list[Sample]:
    """Sample the subject until it has done ``total`` records (an error after ``timeout``)."""
    deadline = time.monotonic() + timeout
    samples: list[Sample] = []
    while time.monotonic() < deadline:
        got = subject.count()
        if got is not None:
            samples.append(Sample(time.monotonic(), got, cpu_seconds(subject.tree())))
            if got >= total:
                return samples
        problem = subject.failed()
        if problem:
            raise RuntimeError(problem)
        time.sleep(every)
    done = samples[-1].count if samples else 0
    raise RuntimeError(f"{done:.0f} of {total:.0f} records done in {timeout:.0f} s")


def throughput(samples: list[Sample], total: float, started: float) -> dict[str, Any]:
    """Steady events/s and cores between 10 % and 90 % of ``total``, and from first to last."""

    def first_at(level: float) -> Sample:
        return next(s for s in samples if s.count >= level)

    first = next(s for s in samples if s.count > 0)
    lo, hi, end = first_at(0.1 * total), first_at(0.9 * total), first_at(total)
    span = hi.at - lo.at
    return {
        "records": total,
        "first_output_s": first.at - started,
        "steady_per_s": (hi.count - lo.count) / span if span > 0 else float("nan"),
        "cpu_cores": (hi.cpu_s - lo.cpu_s) / span if span > 0 else float("nan"),
        "overall_per_s": (end.count - first.count) / (end.at - first.at)
        if end.at > first.at
        else float("nan"),
    }


def wait_quiet(subject: Subject, settle: float, timeout: float) -> float:
    """Until the subject's count has not moved for ``settle`` seconds; returns it."""
    deadline = time.monotonic() + timeout
    last, since = subject.count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = subject.count()
        if now != last:
            last, since = now, time.monotonic()
        elif last is not None and time.monotonic() - since >= settle:
            return last
    raise RuntimeError(f"the subject never went quiet in {timeout:.0f} s (at {last})")


@dataclass
class LatencyRun:
    offered: float = 0.0
    sent: int = 0
    ms: list[float] = field(default_factory=list)
    buckets_before: dict[float, float] | None = None
    buckets_after: dict[float, float] | None = None
    # the subject's CPU seconds and wall seconds from the first event offered to the last
    # one done: what the same events cost live, against the pre-filled topics' cost
    cpu_s: float = float("nan")
    wall_s: float = float("nan")


Timed = Callable[[bytes, str], float | None]  # (output record, tag) -> its event ts (ms)


def alert_ts(value: bytes, tag: str) -> float | None:
    """An alert of one of our timed events: the event's ts."""
    alert = orjson.loads(value)
    if str(alert.get("event_id", "")).startswith(tag) and alert.get("rule"):
        return float(event_ts_ms(alert["event_ts"]))
    return None


def is_retro(value: bytes) -> bool:
    """An alert of a retro-hunt (``retro: true``). Only a record naming the field is parsed:
    the collector already parses every alert once (``timed``), on the worker's cores."""
    if b'"retro"' not in value:
        return False
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and record.get("retro") is True


def copy_ts(value: bytes, tag: str) -> float | None:
    """A copied input record of one of our timed events: its ts."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(record, dict) and str(record.get("event_id", "")).startswith(tag):
        return float(record["ts"])
    return None


async def offer(
    settings: Settings,
    templates: list[tuple[str, bytes | None, bytes, bool]],
    subject: Subject,
    timed: Timed,
    rate: float,
    count: int,
    tag: str,
) -> LatencyRun:
    """Offer ``count`` events at ``rate``/s, each stamped with its send time; time the
    outputs of them that arrive on the subject's output topic."""
    run = LatencyRun()
    last = time.monotonic()

    async def collect() -> None:
        nonlocal last
        async for _, value in iter_records(
            settings.kafka, [subject.out_topic], from_beginning=True
        ):
            now = time.time() * 1000
            ts = timed(value, tag)
            if ts is not None:
                run.ms.append(now - ts)
            if not is_retro(value):  # a running hunt's alerts keep coming: not the backlog
                last = time.monotonic()

    async def idle() -> None:
        # the output topic's earlier records are read once nothing came for 1.5 s
        while time.monotonic() - last < 1.5:  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    collector = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(idle(), timeout=180)
        before = await asyncio.to_thread(wait_quiet, subject, 1.5, 180)
        run.buckets_before = await asyncio.to_thread(subject.buckets)
        producer = await make_producer(settings.kafka, linger_ms=1)
        cpu_before = cpu_seconds(subject.tree())
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
        await asyncio.to_thread(follow, subject, before + count, 180, SCRAPE_EVERY_S)
        run.wall_s = time.monotonic() - started
        run.cpu_s = cpu_seconds(subject.tree()) - cpu_before
        run.buckets_after = await asyncio.to_thread(subject.buckets)
        await asyncio.sleep(1.0)  # the last outputs reach the collector
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(run: LatencyRun) -> dict[str, float]:
    ms = run.ms
    out = {
        "offered_per_s": run.offered,
        "events": float(run.sent),
        "timed": float(len(ms)),
        "p50_ms": pct(ms, 0.50),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "over_100ms": sum(1 for v in ms if v > 100) / len(ms) if ms else float("nan"),
        "cpu_cores": run.cpu_s / run.wall_s if run.wall_s > 0 else float("nan"),
        "cpu_us_per_event": 1e6 * run.cpu_s / run.sent if run.sent else float("nan"),
    }
    if run.buckets_before is not None and run.buckets_after is not None:
        for q, name in ((0.5, "verdict_p50_ms"), (0.99, "verdict_p99_ms")):
            out[name] = 1000 * histogram_quantile(q, run.buckets_before, run.buckets_after)
    return out


# ------------------------------------------------------------------------------ the run


class LoadWatch:
    """The machine's 1-minute load average, sampled every few seconds during the run."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]

    def note(self) -> float:
        self.samples.append(os.getloadavg()[0])
        return self.samples[-1]

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {
            "start": s[0],
            "end": s[-1],
            "min": min(s),
            "mean": statistics.fmean(s),
            "max": max(s),
        }


@dataclass
class Bench:
    """What every phase of one run shares."""

    args: argparse.Namespace
    settings: Settings
    run: str
    topics: dict[str, str]
    prefix: str
    workdir: Path
    calls: list[bytes]
    web: list[bytes]
    load: LoadWatch

    def input_records(self, spec: PathSpec) -> float:
        return asyncio.run(records_in(self.settings, list(input_topics(self.topics, spec.inputs))))

    def start(self, spec: PathSpec, *, ready: bool = True) -> Subject:
        """Start the subject; with ``ready``, return once it consumes (has its partitions)."""
        if spec is PASS_THROUGH:
            pt = PassThroughSubject(
                [self.topics["calls"], self.topics["web"]],
                self.topics["sink"],
                f"bench-{self.run}-pass",
            )
            if ready:
                pt.wait_ready(60)
            return pt
        calls_topic, web_topic = input_topics(self.topics, spec.inputs)
        env = {
            "SCAMWATCH_TOPIC_CALLS": calls_topic,
            "SCAMWATCH_TOPIC_WEB": web_topic,
            "SCAMWATCH_TOPIC_ALERTS": self.topics[f"alerts-{spec.key}"],
            "SCAMWATCH_TOPIC_DEADLETTER": self.topics[f"deadletter-{spec.key}"],
            "SCAMWATCH_TOPIC_SIGHTINGS": self.topics[f"sightings-{spec.key}"],
            "SCAMWATCH_TOPIC_PARTITIONS": str(self.args.partitions),
            "SCAMWATCH_APP_ID": f"bench-{self.run}-{spec.key}",
            "SCAMWATCH_REDIS_PREFIX": self.prefix,
            "SCAMWATCH_STATE_DIR": str(self.workdir / f"state-{spec.key}"),
            "SCAMWATCH_SNAPSHOT_WAIT_SECONDS": "120",
            "SCAMWATCH_GC_FREEZE": "true",
            # every alerting event is timed: repeats of the pool's events must not be
            # suppressed (what journeys, discovery and suppression cost is another target)
            "SCAMWATCH_SUPPRESS_SECONDS": "0",
            **spec.env,
        }
        worker = start_worker(env, self.workdir / f"worker-{spec.key}.log", spec.args)
        subject = WorkerSubject(worker, self.topics[f"alerts-{spec.key}"])
        try:
            wait_worker_ready(worker, timeout=60)
        except Exception:
            subject.stop()
            raise
        return subject

    def measure_throughput(self, spec: PathSpec) -> tuple[dict[str, Any], list[Sample]]:
        total = self.input_records(spec)
        load_before = self.load.note()
        started = time.monotonic()
        # sampled from its start: the pass-through copies a quick run's topic in a second
        subject = self.start(spec, ready=False)
        window = self.args.live_window or None
        changer = IndicatorChanger(self.settings, self.prefix, self.args.change_every, window)
        try:
            if spec.changes:
                changer.start()
            every = 0.05 if spec is PASS_THROUGH else SCRAPE_EVERY_S
            samples = follow(subject, total, 60 + total / 400, every)
            result = throughput(samples, total, started)
            result["rss_mib"] = rss_mib(subject.tree())
            if isinstance(subject, WorkerSubject):
                result["stateful"] = stateful_work(subject, total)
            if spec.changes:
                changer.stop()
                result["updates"] = update_cost(subject, changer.made)
                result["changes_window_s"] = window
                if window:
                    result["interleaved"] = interleaved(samples, changer.phases, total, window)
            if self.args.rate is None and spec.key == "inline":
                # every path's latency is measured at half of the inline worker's capacity
                self.args.rate = max(100.0, round(0.5 * result["steady_per_s"], -2))
            if self.args.rate is not None and spec.latency:
                hunt = HuntWatch(self.settings, self.prefix, subject) if spec.hunt else None
                if hunt is not None:
                    hunt.start()
                result |= self.measure_latency(spec, subject, self.args.rate)
                if hunt is not None:
                    result["hunt"] = hunt.summary()
        finally:
            changer.stop()
            subject.stop()
        result["load_average"] = statistics.fmean([load_before, self.load.note()])
        return result, samples

    def measure_latency(
        self, spec: PathSpec, subject: Subject | None, rate: float
    ) -> dict[str, Any]:
        """Latency at ``rate`` on a running subject (or on one started for it)."""
        own = subject is None
        running = self.start(spec) if subject is None else subject
        tag = f"lat-{spec.key}-"
        try:
            run = asyncio.run(
                offer(
                    self.settings,
                    latency_templates(self.calls, self.web, self.topics, tag),
                    running,
                    copy_ts if spec is PASS_THROUGH else alert_ts,
                    rate,
                    max(1, int(rate * self.args.latency_seconds)),
                    tag,
                )
            )
        finally:
            if own:
                running.stop()
        self.load.note()
        return {"latency": latency_summary(run), "latency_ms": run.ms}


class HuntWatch:
    """The ``hunt_running`` row: once the worker has matched the pre-filled events live, every
    bundled sample indicator is changed in the store (a new tag), so the worker's automatic
    hunt (``SCAMWATCH_RETROHUNT_SECONDS``) reads them all again for those indicators, at
    ``SCAMWATCH_RETROHUNT_RATE``, while the latency is measured; the events it hunted in that
    time, from its ``scamwatch_hunt_events_total``, show it was running throughout."""

    def __init__(self, settings: Settings, prefix: str, subject: Subject) -> None:
        if not isinstance(subject, WorkerSubject):
            raise TypeError("an automatic hunt runs in a scamwatch worker")
        self._settings = settings
        self._prefix = prefix
        self._port = subject.worker.metrics_port
        self._began: tuple[float, float] | None = None

    def hunted(self) -> float:
        return scrape_metrics(self._port, timeout=2).total("scamwatch_hunt_events_total")

    def start(self, timeout: float = 120) -> None:
        before = self.hunted()
        store = RedisStore.from_url(
            self._settings.redis.url.get_secret_value(), prefix=self._prefix
        )
        try:
            changed = [
                replace(i, tags=(*i.tags, "bench-hunt")) for i in sample_snapshot().indicators
            ]
            store.upsert(changed)
        finally:
            store.close()
        deadline = time.monotonic() + timeout
        while (now := self.hunted()) <= before:  # timed once the hunt reads
            if time.monotonic() > deadline:
                raise RuntimeError(f"the automatic hunt did not start in {timeout:.0f} s")
            time.sleep(0.05)
        self._began = (time.monotonic(), now)

    def summary(self) -> dict[str, float]:
        """What the hunt read while the latency was measured (since :meth:`start`)."""
        if self._began is None:
            raise RuntimeError("HuntWatch.summary before start")
        at, hunted = self._began
        seconds = time.monotonic() - at
        events = self.hunted() - hunted
        return {
            "events_during": events,
            "per_s_during": events / seconds if seconds > 0 else float("nan"),
            "seconds": seconds,
            "rate_setting": float(self._settings.worker.retrohunt_rate),
        }


class IndicatorChanger:
    """Adds one new phone indicator to the store every ``every`` seconds, in a thread of
    this process (not the worker's), until stopped. With ``window``, only in every other
    window of that many seconds, starting with one without changes: the worker's rate in
    the windows with changes against the windows around them, in one run of one worker,
    is the cost of the changes with the machine's drift between rows taken out."""

    def __init__(
        self, settings: Settings, prefix: str, every: float, window: float | None = None
    ) -> None:
        self._settings = settings
        self._prefix = prefix
        self._every = every
        self._window = window
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.made = 0
        self.phases: list[tuple[float, bool]] = []  # (monotonic start, changing)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="indicator-changer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store = RedisStore.from_url(
            self._settings.redis.url.get_secret_value(), prefix=self._prefix
        )
        try:
            base = random.Random(secrets.randbits(32)).randrange(1_000_000)
            began = time.monotonic()
            self.phases.append((began, self._window is None))
            while not self._stop.wait(self._every):
                if self._window is not None:
                    changing = int((time.monotonic() - began) / self._window) % 2 == 1
                    if changing != self.phases[-1][1]:
                        self.phases.append((began + len(self.phases) * self._window, changing))
                    if not changing:
                        continue
                number = f"+1900{(base + self.made) % 10_000_000:07d}"
                store.upsert([Indicator(IndicatorType.PHONE, number, sources=("bench-live",))])
                self.made += 1
        finally:
            store.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def interleaved(
    samples: list[Sample], phases: list[tuple[float, bool]], total: float, window: float
) -> dict[str, Any] | None:
    """Per window of :class:`IndicatorChanger` (its first ``SETTLE_S`` left out: a change
    made just before it ends may be applied in the next), the worker's rate, for the
    windows inside 10-90 % of ``total``; each window with changes against the mean of the
    windows without on either side of it. None when too few windows."""
    lo = next((s.at for s in samples if s.count >= 0.1 * total), None)
    hi = next((s.at for s in samples if s.count >= 0.9 * total), None)
    if lo is None or hi is None:
        return None
    rates: list[tuple[bool, float]] = []
    for start, changing in phases:
        begin, end = max(start + SETTLE_S, lo), min(start + window, hi)
        inside = [s for s in samples if begin <= s.at <= end]
        if end - begin < window / 2 or len(inside) < 2:
            continue
        a, b = inside[0], inside[-1]
        rates.append((changing, (b.count - a.count) / (b.at - a.at)))
    ratios = []
    for i, (changing, rate) in enumerate(rates):
        around = [r for c, r in rates[max(0, i - 1) : i + 2] if not c]
        if changing and around:
            ratios.append(rate / statistics.fmean(around))
    if not ratios:
        return None
    on = [r for c, r in rates if c]
    off = [r for c, r in rates if not c]
    return {
        "window_s": window,
        "windows_on": len(on),
        "windows_off": len(off),
        "on_per_s": statistics.fmean(on),
        "off_per_s": statistics.fmean(off),
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
    }


def stateful_work(subject: WorkerSubject, inputs: float) -> dict[str, float]:
    """What the stateful side did in a row, per input record (by then it had read them all):
    the mix its cost is measured on."""
    try:
        metrics = scrape_metrics(subject.worker.metrics_port, timeout=5)
    except OSError:
        return {}
    journeys = metrics.total("scamwatch_alerts_total", rule="victim_journey")
    return {
        "exposures": metrics.total("scamwatch_exposures"),
        "sightings_per_event": metrics.total("scamwatch_sightings_total") / inputs,
        "journeys_per_event": journeys / inputs,
        "alerts_per_event": metrics.total("scamwatch_alerts_total") / inputs,
        "suppressed_per_event": metrics.total("scamwatch_alerts_suppressed_total") / inputs,
    }


def update_cost(subject: Subject, made: int) -> dict[str, float]:
    """The worker's own cost of the changes: event-loop seconds applying them in place
    (``scamwatch_matcher_update_seconds``) per change applied, and full builds."""
    port = subject.worker.metrics_port if isinstance(subject, WorkerSubject) else None
    deadline = time.monotonic() + 10
    metrics = None
    while port is not None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            metrics = scrape_metrics(port, timeout=2)
            if metrics.total("scamwatch_matcher_changes_applied_total") >= made:
                break
        time.sleep(0.5)
    if metrics is None:
        return {"changes_made": float(made)}
    applied = metrics.total("scamwatch_matcher_changes_applied_total")
    seconds = metrics.total("scamwatch_matcher_update_seconds_sum")
    return {
        "changes_made": float(made),
        "changes_applied": applied,
        "update_batches": metrics.total("scamwatch_matcher_update_seconds_count"),
        "ms_per_change": 1000 * seconds / applied if applied else float("nan"),
        "full_builds": metrics.total("scamwatch_matcher_build_seconds_count"),
    }


async def records_in(settings: Settings, topics: list[str]) -> float:
    """Records now in ``topics`` (their end offsets: the run's topics are never compacted)."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    if len({p.topic for p in parts}) < len(topics):
        raise RuntimeError(f"no partitions known for some of {topics}")
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return float(sum(ends.values()))


async def run_topics(settings: Settings, run: str) -> list[str]:
    """Every topic this run made, the workers' internal ones included."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(f"bench-{run}-")]
    finally:
        await admin.close()


def cleanup(settings: Settings, run: str, prefix: str) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(delete_topics(settings.kafka, asyncio.run(run_topics(settings, run))))
    client = redis.Redis.from_url(settings.redis.url.get_secret_value())
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 10_000):
            client.delete(*keys[i : i + 10_000])
    finally:
        client.close()


# ------------------------------------------------------------------------------ report


def _target(target: str, measured: str, value: float, ok: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "value": value, "ok": ok}


def _at_least(target: str, value: float, floor: float) -> dict[str, Any]:
    """A ratio target: ``value`` against ``floor``."""
    return _target(target, f"{value:.0%}", value, value >= floor)


def judge(paths: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The DESIGN targets, each with the measured figure (absent paths: not judged)."""
    out: list[dict[str, Any]] = []

    def rate(key: str) -> float | None:
        path = paths.get(key)
        return None if path is None else float(path["steady_per_s"])

    pt, inline = rate("pass_through"), rate("inline")
    if pt and inline:
        out.append(
            _at_least(f"inline ≥ {TARGET_RATIO:.0%} of the pass-through", inline / pt, TARGET_RATIO)
        )
    for key, spec_label in (
        ("inline", "inline"),
        ("agents", "agents"),
        ("processes_2", "--processes 2"),
        ("hunt_running", "inline with an automatic hunt running"),
    ):
        lat = paths.get(key, {}).get("latency")
        hunting = paths.get(key, {}).get("hunt")
        if lat and (key != "hunt_running" or (hunting and hunting.get("events_during"))):
            out.append(
                _target(
                    f"{spec_label}: p99 ≤ {TARGET_P99_MS:.0f} ms at half capacity",
                    f"{lat['p99_ms']:.0f} ms at {lat['offered_per_s']:,.0f}/s"
                    + (f" (hunting {hunting['per_s_during']:,.0f}/s)" if hunting else ""),
                    lat["p99_ms"],
                    lat["p99_ms"] <= TARGET_P99_MS,
                )
            )
    for on_key, off_key, what in (
        ("stateful_on", "stateful_off", "stateful side on"),
        ("stateful_unsuppressed", "stateful_off", "stateful side on, suppression off"),
        (
            "stateful_on_population",
            "stateful_off_population",
            "stateful side on, subscribers drawn from a population,",
        ),
    ):
        on, off = rate(on_key), rate(off_key)
        if on and off:
            out.append(
                _at_least(f"{what} ≥ {TARGET_STATEFUL:.0%} of off", on / off, TARGET_STATEFUL)
            )
    live = paths.get("live_updates")
    if live and inline and not live.get("changes_window_s"):  # changes all the time
        out.append(
            _at_least(
                f"one change a second: ≥ {TARGET_LIVE:.0%} of the steady (inline)",
                live["steady_per_s"] / inline,
                TARGET_LIVE,
            )
        )
    mixed = (live or {}).get("interleaved")
    if mixed:
        out.append(
            _at_least(
                f"one change a second: ≥ {TARGET_LIVE:.0%} of the same worker without "
                f"(windows of {mixed['window_s']:.0f} s, median of {len(mixed['ratios'])})",
                mixed["median_ratio"],
                TARGET_LIVE,
            )
        )
    cost = (live or {}).get("updates", {}).get("ms_per_change")
    if cost is not None:
        out.append(
            _target(
                f"worker CPU per change ≤ {TARGET_CHANGE_MS:.0f} ms",
                f"{cost:.2f} ms",
                cost,
                cost <= TARGET_CHANGE_MS,
            )
        )
    two = rate("processes_2")
    if two and inline:
        scale = two / inline
        out.append(
            _target(
                f"--processes 2 ≥ {TARGET_SCALE}× one process",
                f"{scale:.2f}×",
                scale,
                scale >= TARGET_SCALE,
            )
        )
    return out


def report_table(r: dict[str, Any]) -> tuple[Table, Table]:
    m = r["machine"]["load_average"]
    t = Table(
        title=(
            f"pipeline benchmark, {r['date']}, {r['machine']['cpus']} CPUs, code {r.get('code')}, "
            f"{r['params']['indicators']:,} indicators, load {m['min']:.1f}-{m['max']:.1f}"
        ),
        title_justify="left",
    )
    for col in (
        "path",
        "sustained ev/s",
        "÷ pass-through",
        "CPU cores",
        "ev per CPU s",
        "first output",
        "RSS MiB",
        "p50 / p99 / max ms",
        "verdict p99 ms",
        "CPU µs per event: pre-filled / live",
        "sightings / journeys per event",
        "per change",
    ):
        t.add_column(col, justify="left" if col == "path" else "right")
    pt = r["paths"].get("pass_through", {}).get("steady_per_s")
    for p in r["paths"].values():
        lat = p.get("latency", {})
        t.add_row(
            p["label"],
            f"{p['steady_per_s']:,.0f}",
            f"{p['steady_per_s'] / pt:.0%}" if pt else "",
            f"{p['cpu_cores']:.2f}",
            f"{p['steady_per_s'] / p['cpu_cores']:,.0f}" if p["cpu_cores"] > 0 else "",
            f"{p['first_output_s']:.1f} s",
            f"{p['rss_mib']:,.0f}",
            f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} / {lat['max_ms']:.0f}" if lat else "",
            f"{lat['verdict_p99_ms']:.0f}" if "verdict_p99_ms" in lat else "",
            _cpu_per_event(p),
            _stateful(p.get("stateful")),
            _per_change(p.get("updates")),
        )
    targets = Table(
        title=f"targets (latency offered at {r['rate_per_s']:,.0f}/s)", title_justify="left"
    )
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("met", justify="center")
    for row in r["targets"]:
        targets.add_row(
            row["target"], row["measured"], "[green]yes[/]" if row["ok"] else "[red]no[/]"
        )
    return t, targets


def _cpu_per_event(p: dict[str, Any]) -> str:
    """The CPU an event costs on the pre-filled topics, and offered live (its latency run):
    live, each fetch and each produce request carries fewer records."""
    prefilled = 1e6 * p["cpu_cores"] / p["steady_per_s"] if p["steady_per_s"] > 0 else None
    live = p.get("latency", {}).get("cpu_us_per_event")
    parts = [f"{prefilled:.0f}" if prefilled else "", f"{live:.0f}" if live else ""]
    return " / ".join(parts) if live else parts[0]


def _stateful(work: dict[str, float] | None) -> str:
    if not work:
        return ""
    return f"{work['sightings_per_event']:.3f} / {work['journeys_per_event']:.3f}"


def _per_change(updates: dict[str, float] | None) -> str:
    if not updates or "ms_per_change" not in updates:
        return ""
    return (
        f"{updates['ms_per_change']:.2f} ms ({updates['changes_applied']:.0f} of "
        f"{updates['changes_made']:.0f} applied; full builds: "
        f"{updates['full_builds']:.0f}, the start's included)"
    )


def _latency(path: dict[str, Any], values_ms: list[float], q: float) -> float:
    """The path's measured quantile (from all its latencies), else one of ``values_ms``."""
    measured = path.get("latency", {}).get(f"p{round(q * 100)}_ms")
    return float(measured) if measured is not None else pct(values_ms, q)


def plot(results: dict[str, Any], cdfs: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = results["paths"]
    # one bar a path, a dozen in a full run: wide enough, labels slanted so none overlaps
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(max(13.0, 6.0 + 0.8 * len(paths)), 6.5), width_ratios=(3, 2)
    )
    labels = [p["label"].replace(" (", "\n(", 1) for p in paths.values()]
    values = [p["steady_per_s"] for p in paths.values()]
    bars = left.bar(range(len(values)), values, color="tab:blue")
    for bar, p in zip(bars, paths.values(), strict=True):
        left.annotate(
            f"{p['steady_per_s']:,.0f}/s\n{p['cpu_cores']:.2f} cores",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    if "pass_through" in paths:
        left.axhline(
            TARGET_RATIO * paths["pass_through"]["steady_per_s"],
            color="red",
            linestyle="--",
            linewidth=0.8,
            label=f"target: inline ≥ {TARGET_RATIO:.0%} of the pass-through",
        )
    if "inline" in paths and "processes_2" in paths:
        left.axhline(
            TARGET_SCALE * paths["inline"]["steady_per_s"],
            color="orange",
            linestyle="--",
            linewidth=0.8,
            label=f"target: --processes 2 ≥ {TARGET_SCALE}× inline",
        )
    left.set_xticks(range(len(values)), labels, fontsize=7, rotation=35, ha="right")
    left.set_ylabel("sustained events/s (10-90 % of a pre-filled topic)")
    left.set_ylim(0, max(values) * 1.25 if values else 1)
    left.set_title(f"throughput, {results['params']['indicators']:,} indicators")
    if left.get_legend_handles_labels()[0]:  # a target line drawn
        left.legend(fontsize=8, loc="upper right")
    for key, values_ms in cdfs.items():
        if values_ms:
            ordered = sorted(values_ms)
            n = len(ordered)
            right.step(
                ordered,
                [(i + 1) / n for i in range(n)],
                where="post",
                label=(
                    f"{paths[key]['label']}: p50 {_latency(paths[key], values_ms, 0.5):.0f}, "
                    f"p99 {_latency(paths[key], values_ms, 0.99):.0f} ms"
                ),
            )
    right.axvline(
        TARGET_P99_MS, color="red", linestyle="--", label=f"target p99 {TARGET_P99_MS:.0f} ms"
    )
    right.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    right.set_xscale("log")
    right.set_xlabel("event ts → alert received (pass-through: → copy received), ms, log scale")
    right.set_ylabel("fraction")
    right.set_title(f"latency CDF at {results['rate_per_s']:,.0f} events/s offered")
    right.legend(fontsize=7, loc="lower right")
    load = results["machine"]["load_average"]
    fig.suptitle(
        f"scamwatch pipeline benchmark, {results['date']} (load {load['min']:.1f}-{load['max']:.1f}"
        f" on {results['machine']['cpus']} CPUs)"
    )
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="A small run (a few minutes).")
    parser.add_argument("--indicators", type=int, help="Default 1,000,000 (--quick: 50,000).")
    parser.add_argument("--events", type=int, help="Pre-filled; default 200,000 (--quick: 30,000).")
    parser.add_argument(
        "--latency-seconds", type=float, help="Offered per path; default 15 (--quick: 5)."
    )
    parser.add_argument(
        "--rate", type=float, help="Offered events/s (default: half of the inline capacity)."
    )
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument(
        "--subscribers",
        type=int,
        default=1_000_000,
        help="The population rows: subscriber ids drawn from this many (default 1,000,000).",
    )
    parser.add_argument(
        "--change-every", type=float, default=1.0, help="live_updates: seconds between changes."
    )
    parser.add_argument(
        "--live-window",
        type=float,
        default=3.0,
        help="live_updates: changes only in every other window of this many seconds "
        "(0: all the time).",
    )
    parser.add_argument(
        "--paths",
        default=",".join(p.key for p in PATHS),
        help=f"Which to run, in the order given: {', '.join(p.key for p in PATHS)}.",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, help="JSON (and the PNG beside it).")
    parser.add_argument("--code", default=None, help="What code was measured (default: git HEAD).")
    args = parser.parse_args(argv)
    quick = args.quick
    args.indicators = args.indicators or (50_000 if quick else 1_000_000)
    args.events = args.events or (30_000 if quick else 200_000)
    args.latency_seconds = args.latency_seconds or (5.0 if quick else 15.0)
    if args.output is None:
        where = Path(tempfile.gettempdir()) if quick else RESULTS_DIR
        args.output = where / ("bench_pipeline_quick.json" if quick else "bench_pipeline.json")
    known = {p.key for p in PATHS}
    chosen = [k.strip() for k in args.paths.split(",") if k.strip()]
    if not chosen or set(chosen) - known:
        parser.error(f"--paths: expected some of {', '.join(sorted(known))}")
    if "inline" not in chosen and args.rate is None:
        parser.error("--rate is needed when inline (which gives the rate) is not run")
    # in the order given (to see whether the order matters); each once
    by_key = {p.key: p for p in PATHS}
    args.paths = [by_key[k] for k in dict.fromkeys(chosen)]
    return args


CDF_POINTS = 1000


def cdf_points(values_ms: list[float]) -> list[float]:
    """At most :data:`CDF_POINTS` of the sorted latencies, evenly spaced by rank (the last
    one, the maximum, always kept): enough to draw the CDF again."""
    ordered = sorted(values_ms)
    if len(ordered) <= CDF_POINTS:
        return ordered
    step = (len(ordered) - 1) / (CDF_POINTS - 1)
    return [ordered[round(i * step)] for i in range(CDF_POINTS)]


def replot(path: Path) -> int:
    """Draw the plot of a results file again (its PNG beside it)."""
    results = json.loads(path.read_text())
    cdfs = {k: p.get("latency_cdf_ms", []) for k, p in results["paths"].items()}
    png = path.with_suffix(".png")
    plot(results, cdfs, png)
    console.print(f"plot: {png}")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--replot":
        return replot(Path(sys.argv[2]))
    args = parse_args()
    settings = load_settings()
    run = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
    names = ["calls", "web", "sink"]
    population = any(p.inputs == "population" for p in args.paths)
    if population:
        names += ["calls-population", "web-population"]
    names += [
        f"{kind}-{p.key}"
        for p in args.paths
        if p is not PASS_THROUGH
        for kind in ("alerts", "deadletter", "sightings")
    ]
    topics = {name: f"bench-{run}-{name}" for name in names}
    prefix = f"scamwatch-bench:{run}:"
    workdir = Path(tempfile.mkdtemp(prefix="scamwatch-bench-"))
    began = time.monotonic()
    load = LoadWatch()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "code": args.code or _git_head(),
        "params": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "paths"
        }
        | {"paths": [p.key for p in args.paths]},
        "paths": {},
    }
    cdfs: dict[str, list[float]] = {}
    try:
        console.print(f"[bold]1.[/] loading {args.indicators:,} indicators into Redis ...")
        results["load"] = load_indicators(settings, prefix, args.indicators, args.seed)
        console.print(f"   {results['load']['seconds']:.1f} s ({results['load']['per_s']:,.0f}/s)")

        console.print(f"[bold]2.[/] pre-filling {args.events:,} events ...")
        calls, web = event_pool(args.seed)
        asyncio.run(
            ensure_topics(settings.kafka, list(topics.values()), partitions=args.partitions)
        )
        exposed_at = int(time.time() * 1000) - 60_000  # before every event, within the window
        results["prefill_per_s"] = asyncio.run(prefill(settings, topics, calls, web, args.events))
        asyncio.run(pre_expose(settings, topics, args.paths, calls, web, exposed_at))
        console.print(f"   {results['prefill_per_s']:,.0f} events/s produced")
        if population:
            console.print(
                f"   and again, subscribers drawn from {args.subscribers:,} "
                "(the population rows' inputs) ..."
            )
            drawn = Population(args.subscribers, args.seed)
            asyncio.run(prefill(settings, topics, calls, web, args.events, drawn))
        bench = Bench(args, settings, run, topics, prefix, workdir, calls, web, load)

        for n, spec in enumerate(args.paths, start=3):
            console.print(f"[bold]{n}.[/] {spec.label} ...")
            result, _ = bench.measure_throughput(spec)
            cdfs[spec.key] = result.pop("latency_ms", [])
            results["paths"][spec.key] = {"label": spec.label, **result}
            lat = result.get("latency")
            console.print(
                f"   {result['steady_per_s']:,.0f} events/s at {result['cpu_cores']:.2f} cores"
                + (
                    f"; p50 / p99 {lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms at "
                    f"{lat['cpu_cores']:.2f} cores ({lat['cpu_us_per_event']:.0f} µs per event)"
                    if lat
                    else ""
                )
            )
            passed = results["paths"].get(PASS_THROUGH.key)
            if passed is not None and "latency" not in passed and args.rate is not None:
                # the rate was not known yet when it ran: once more, for its latency only
                console.print(f"   {PASS_THROUGH.label}: latency at {args.rate:,.0f}/s ...")
                got = bench.measure_latency(PASS_THROUGH, None, args.rate)
                cdfs[PASS_THROUGH.key] = got.pop("latency_ms")
                passed |= got
        for key, values_ms in cdfs.items():  # kept, so the plot can be drawn again
            results["paths"][key]["latency_cdf_ms"] = cdf_points(values_ms)
        results["rate_per_s"] = args.rate
        results["elapsed_s"] = time.monotonic() - began
        load.note()
        results["machine"]["load_average"] = load.summary()
        results["targets"] = judge(results["paths"])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        png = args.output.with_suffix(".png")
        plot(results, cdfs, png)
        for table in report_table(results):
            console.print(table)
        console.print(
            f"whole run {results['elapsed_s']:.0f} s; results: {args.output}, plot: {png}"
        )
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        cleanup(settings, run, prefix)


if __name__ == "__main__":
    sys.exit(main())
