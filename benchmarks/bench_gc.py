"""Garbage-collector pauses with a 1M-indicator matcher, with and without the fix, in one run.

A matcher of 1,000,000 indicators is millions of Python objects. Left in the collector's
generations, every full collection walks them all while the event loop waits. This script
builds one such matcher (the indicator mix of ``bench_matcher.py``) and, on that same
matcher, runs a worker-like loop (decode → match batches of call and web events, keeping a
bounded window of recent results alive as a worker's buffers and caches are) under each
collector setup (the loop reads "fetches" of FETCH records, as a consumer's batch, whose
per-record objects live until the batch is done: that is what promotes objects to the
oldest generation and so brings on full collections):

- ``default``: CPython's default thresholds, nothing frozen (the worker before the fix);
- ``threshold``: the oldest generation's threshold raised 10x (``gc.set_threshold``);
- ``freeze``: what ``IndicatorFollower`` does after a swap (``FrozenHeap.after_swap``,
  i.e. ``gc.freeze()``).

For each: one explicit full ``gc.collect()`` (the pause a full collection costs), every
automatic collection's duration by generation (``gc.callbacks``), and the loop's iteration
times (p50, p99, max). Prints a table and writes ``benchmarks/results/bench_gc.json``.

    .venv/bin/python benchmarks/bench_gc.py                    # 1M indicators, ~2 min
    .venv/bin/python benchmarks/bench_gc.py --size 100000 --seconds 5
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_matcher import AT_MS, generate_events, generate_snapshot

from engine.core.events import decode_call, decode_web
from engine.core.matcher import Matcher
from engine.stream.follower import FrozenHeap

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64  # events per loop iteration (one "turn" of the event loop)
FETCH = 2_000  # records per fetch, alive until all are processed (a consumer's batch)


class PauseLog:
    """Every collection's duration and generation, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_loop(
    matcher: Matcher,
    calls: list[bytes],
    web: list[bytes],
    seconds: float,
    during: threading.Thread | None = None,
) -> dict[str, Any]:
    """The worker-like loop for ``seconds`` (or while ``during`` runs): iteration times and
    the collections it met."""
    pauses = PauseLog()
    iterations: list[float] = []
    n_calls, n_web = len(calls), len(web)
    i = 0
    gc.callbacks.append(pauses)
    try:
        deadline = time.perf_counter() + seconds
        if during is not None:
            during.start()
        while during.is_alive() if during is not None else time.perf_counter() < deadline:
            # one fetch: per-record objects, as a consumer's records and their messages
            fetch = [
                {"stream": "calls" if (i + k) % 3 else "web", "offset": i + k, "out": []}
                for k in range(FETCH)
            ]
            for first in range(0, FETCH, BATCH):
                started = time.perf_counter()
                for record in fetch[first : first + BATCH]:
                    if record["stream"] == "calls":
                        verdict = matcher.match_call(decode_call(calls[i % n_calls]), AT_MS)
                    else:
                        verdict = matcher.match_web(decode_web(web[i % n_web]), AT_MS)
                    record["out"].append((verdict, [i, started]))
                    i += 1
                iterations.append(time.perf_counter() - started)
            del fetch
    finally:
        gc.callbacks.remove(pauses)
    full = [d for g, d in pauses.pauses if g == 2]
    young = [d for g, d in pauses.pauses if g < 2]
    return {
        "events": i,
        "iterations": len(iterations),
        "iteration_p50_ms": percentile(iterations, 0.50) * 1e3,
        "iteration_p99_ms": percentile(iterations, 0.99) * 1e3,
        "iteration_max_ms": max(iterations) * 1e3,
        "full_collections": len(full),
        "full_collection_max_ms": max(full, default=0.0) * 1e3,
        "young_collections": len(young),
        "young_collection_max_ms": max(young, default=0.0) * 1e3,
    }


def explicit_full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1e3


def measure(size: int, seconds: float, seed: int) -> dict[str, Any]:
    print(f"building a {size:,}-indicator matcher …", file=sys.stderr, flush=True)
    snapshot = generate_snapshot(size, seed)
    events = generate_events(snapshot, 100_000, 50_000, seed)
    started = time.perf_counter()
    matcher = Matcher.build(snapshot, default_region="US")
    build_s = time.perf_counter() - started
    gc.collect()
    defaults = gc.get_threshold()
    variants: dict[str, dict[str, Any]] = {}

    def one(name: str) -> None:
        print(f"  {name}: {seconds:.0f} s loop …", file=sys.stderr, flush=True)
        tracked = len(gc.get_objects())
        frozen = gc.get_freeze_count()
        full_ms = explicit_full_collection_ms()  # never walks the frozen generation
        result = run_loop(matcher, events.calls, events.web, seconds)
        variants[name] = {
            "tracked_objects": tracked,
            "frozen_objects": frozen,
            "explicit_full_collection_ms": full_ms,
            **result,
        }

    one("default")
    gc.set_threshold(defaults[0], defaults[1], defaults[2] * 10)
    one("threshold")
    gc.set_threshold(*defaults)
    FrozenHeap().after_swap()  # as after the worker's first swap: a full pass, then frozen
    one("freeze")

    def rebuild(name: str, heap: FrozenHeap | None) -> None:
        """The loop while a new matcher is built in a thread, as the follower does."""
        print(f"  {name}: loop during a rebuild …", file=sys.stderr, flush=True)
        built: list[Matcher] = []
        builder = threading.Thread(
            target=lambda: built.append(Matcher.build(snapshot, default_region="US"))
        )
        started = time.perf_counter()
        if heap is None:
            result = run_loop(matcher, events.calls, events.web, 0, during=builder)
        else:
            with heap.building():
                result = run_loop(matcher, events.calls, events.web, 0, during=builder)
                heap.after_swap()
        variants[name] = {
            "tracked_objects": len(gc.get_objects()),
            "frozen_objects": gc.get_freeze_count(),
            "explicit_full_collection_ms": None,
            "rebuild_s": time.perf_counter() - started,
            **result,
        }
        built.clear()

    # a rebuild (an indicator change) with the old matcher frozen: collector on, then off
    rebuild("rebuild, collector on", None)
    rebuild("rebuild, collector off (fix)", FrozenHeap())
    gc.unfreeze()
    return {
        "size": size,
        "build_s": build_s,
        "rss_mib": psutil.Process().memory_info().rss / 2**20,
        "seconds_per_variant": seconds,
        "batch": BATCH,
        "fetch": FETCH,
        "default_threshold": list(defaults),
        "variants": variants,
    }


def table(result: dict[str, Any], date: str) -> None:
    t = Table(
        title=f"GC pauses, {result['size']:,} indicators ({date}, build {result['build_s']:.1f} s)"
    )
    for col in (
        "setup",
        "tracked objects",
        "gc.collect() ms",
        "full GCs",
        "worst full GC ms",
        "iter p50 ms",
        "iter p99 ms",
        "iter max ms",
        "events/s",
    ):
        t.add_column(col, justify="right")
    for name, v in result["variants"].items():
        t.add_row(
            name,
            f"{v['tracked_objects']:,}",
            "-"
            if v["explicit_full_collection_ms"] is None
            else f"{v['explicit_full_collection_ms']:.1f}",
            str(v["full_collections"]),
            f"{v['full_collection_max_ms']:.1f}",
            f"{v['iteration_p50_ms']:.3f}",
            f"{v['iteration_p99_ms']:.3f}",
            f"{v['iteration_max_ms']:.1f}",
            f"{v['events'] / v.get('rebuild_s', result['seconds_per_variant']):,.0f}",
        )
    Console(width=160).print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="loop time per setup")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = measure(args.size, args.seconds, args.seed)
    result.update(
        date=date,
        python=platform.python_version(),
        load_1m=psutil.getloadavg()[0],
    )
    table(result, date)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_gc.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
