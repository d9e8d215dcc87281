"""Live-update benchmark: what one indicator change costs the worker at 1,000,000 indicators.

The matcher is built once from ``bench_matcher``'s seeded snapshot (same mix of phones,
prefixes, domains, URLs and keywords), then change sets are applied to it in place as the
follower applies them (``Matcher.prepare``, then ``Matcher.apply``). For each kind of change,
single changes and batches of 100, it measures the process CPU time (all threads: the
keyword automaton is built in one) and the wall time from the change set in hand to the
matcher answering with it ("live", the follower's poll interval not included). The full
build of the same snapshot, measured in the same run, is the baseline each figure is a
ratio of. DESIGN's target: <= 50 ms of worker CPU per change, live <= 1 s.

Prints a table and writes ``benchmarks/results/bench_updates.json``.

    .venv/bin/python benchmarks/bench_updates.py                 # 1M indicators
    .venv/bin/python benchmarks/bench_updates.py --size 100000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_matcher import AT_MS, _domain, _number, generate_snapshot

from engine.core.events import WebEvent
from engine.core.matcher import Matcher
from engine.core.models import Change, ChangeSet, Indicator, IndicatorType

RESULTS = Path(__file__).resolve().parent / "results"
T = IndicatorType
CPU_TARGET_MS = 50.0
LIVE_TARGET_S = 1.0

# a change of each kind: (name, makes the indicator and op of change i)
ChangeMaker = Callable[[random.Random, Matcher, int], tuple[str, bool, Indicator]]


def _new_phone(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    return "upsert", False, Indicator(T.PHONE, _number(rnd), sources=("bench",))


def _held_phone_removed(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    value = next(iter(m._phones))  # the oldest held number
    return "remove", False, Indicator(T.PHONE, value)


def _new_domain(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    return "upsert", False, Indicator(T.DOMAIN, _domain(rnd), sources=("bench",))


def _new_url(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    value = f"{_domain(rnd)}/{rnd.randrange(10**8)}"
    return "upsert", False, Indicator(T.URL, value, sources=("bench",))


def _new_prefix(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    return "upsert", False, Indicator(T.PHONE_PREFIX, _number(rnd)[:9], sources=("bench",))


def _allow_domain(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    return "upsert", True, Indicator(T.DOMAIN, _domain(rnd))


def _new_keyword(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    return "upsert", False, Indicator(T.KEYWORD, f"brand{i}-{rnd.randrange(10**6)}")


def _mixed(rnd: random.Random, m: Matcher, i: int) -> tuple[str, bool, Indicator]:
    """What feeds send: mostly new numbers, domains and URLs, some removals, no keyword."""
    maker = rnd.choices(
        [_new_phone, _new_domain, _new_url, _held_phone_removed, _new_prefix, _allow_domain],
        weights=[50, 20, 15, 10, 3, 2],
    )[0]
    return maker(rnd, m, i)


KINDS: list[tuple[str, ChangeMaker]] = [
    ("phone added", _new_phone),
    ("phone removed", _held_phone_removed),
    ("phone prefix added", _new_prefix),
    ("domain added", _new_domain),
    ("url added", _new_url),
    ("allowlist domain added", _allow_domain),
    ("mixed feed changes", _mixed),
    ("keyword added (automaton rebuilt)", _new_keyword),
]


def warm_domain_cache(matcher: Matcher, rnd: random.Random, hosts: int) -> None:
    """Fill the per-host cache as traffic would, so a domain change pays for emptying it."""
    for _ in range(hosts):
        host = _domain(rnd)
        matcher.match_web(WebEvent(event_id="w", ts=AT_MS, partner_id="p", host=host), AT_MS)


def measure_kind(
    matcher: Matcher, make: ChangeMaker, batch: int, repeats: int, rnd: random.Random
) -> dict[str, Any]:
    cpu_ms: list[float] = []
    live_s: list[float] = []
    for r in range(repeats):
        warm_domain_cache(matcher, rnd, 2_000)
        changes = []
        for i in range(batch):
            op, allowlist, ind = make(rnd, matcher, r * batch + i)
            changes.append(Change(matcher.version + i + 1, op, allowlist, ind))
        change_set = ChangeSet(matcher.version, matcher.version + batch, tuple(changes))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        prepared = matcher.prepare(change_set)  # the follower runs this in a thread
        matcher.apply(prepared, AT_MS)  # and this on the event loop
        live_s.append(time.perf_counter() - wall0)
        cpu_ms.append((time.process_time() - cpu0) * 1000)
    per_change = [c / batch for c in cpu_ms]
    return {
        "batch": batch,
        "repeats": repeats,
        "cpu_ms_per_batch_median": statistics.median(cpu_ms),
        "cpu_ms_per_batch_max": max(cpu_ms),
        "cpu_ms_per_change_median": statistics.median(per_change),
        "cpu_ms_per_change_max": max(per_change),
        "live_s_median": statistics.median(live_s),
        "live_s_max": max(live_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--repeats", type=int, default=20, help="change sets per kind and size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    print(f"generating {args.size:,} indicators …", file=sys.stderr, flush=True)
    snapshot = generate_snapshot(args.size, args.seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    matcher = Matcher.build(snapshot)
    build = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
    del snapshot
    rnd = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    for name, make in KINDS:
        for batch in (1, 100):
            repeats = max(3, args.repeats // (4 if batch > 1 else 1))
            print(f"{name}, batches of {batch} …", file=sys.stderr, flush=True)
            row = measure_kind(matcher, make, batch, repeats, rnd)
            row["kind"] = name
            row["vs_full_build"] = row["cpu_ms_per_batch_median"] / 1000 / build["cpu_s"]
            row["meets_cpu_target"] = row["cpu_ms_per_change_max"] <= CPU_TARGET_MS
            row["meets_live_target"] = row["live_s_max"] <= LIVE_TARGET_S
            rows.append(row)

    date = datetime.now(UTC).isoformat(timespec="seconds")
    table = Table(
        title=f"live updates at {args.size:,} indicators ({date}); full build "
        f"{build['cpu_s']:.2f} s CPU, {build['wall_s']:.2f} s wall"
    )
    for col in (
        "change",
        "batch",
        "CPU ms/change (median / max)",
        "CPU ms/batch",
        "live ms (median / max)",
        "batch CPU vs full build",
        "≤ 50 ms, ≤ 1 s",
    ):
        table.add_column(col, justify="left" if col == "change" else "right")
    for row in rows:
        table.add_row(
            row["kind"],
            str(row["batch"]),
            f"{row['cpu_ms_per_change_median']:.3f} / {row['cpu_ms_per_change_max']:.3f}",
            f"{row['cpu_ms_per_batch_median']:.2f}",
            f"{row['live_s_median'] * 1000:.2f} / {row['live_s_max'] * 1000:.2f}",
            f"{row['vs_full_build']:.5f}",
            "yes" if row["meets_cpu_target"] and row["meets_live_target"] else "NO",
        )
    Console(width=160).print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": date,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "size": args.size,
        "seed": args.seed,
        "full_build": build,
        "targets": {"cpu_ms_per_change": CPU_TARGET_MS, "live_s": LIVE_TARGET_S},
        "results": rows,
        "all_met": all(r["meets_cpu_target"] and r["meets_live_target"] for r in rows),
    }
    path = args.out / "bench_updates.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
