"""Hostile-input micro-benchmark: the worst case per field, in µs per event.

Every case of :mod:`engine.devtools.hostile` (one value of ~16 KiB built to be slow to
normalize or match, in one field of an otherwise ordinary event) through decode → normalize
→ match, the fastest of a few runs, against a typical event of the same stream measured in
the same run. Prints a table of the worst case per field and writes
``benchmarks/results/bench_hostile.json``.

    .venv/bin/python benchmarks/bench_hostile.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.models import Stream
from engine.devtools.hostile import (
    HOSTILE_BYTES,
    TYPICAL,
    best_seconds,
    hostile_cases,
    hostile_matcher,
    process_once,
)

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (the best counts)")
    args = parser.parse_args()
    matcher = hostile_matcher()
    typical = {
        s: best_seconds(lambda s=s: process_once(matcher, s, TYPICAL[s]), 2000) for s in Stream
    }
    cases: list[dict[str, Any]] = []
    for case in hostile_cases():
        raw = case.raw()

        def run(raw: bytes = raw, stream: Stream = case.stream) -> None:
            process_once(matcher, stream, raw)  # every case is schema-valid: it is matched

        run()  # warm
        seconds = best_seconds(run, args.repeat)
        cases.append(
            {
                "case": case.name,
                "stream": case.stream.value,
                "field": case.field,
                "bytes": len(raw),
                "us_per_event": round(seconds * 1e6, 1),
                "x_typical": round(seconds / typical[case.stream], 1),
            }
        )
    worst: dict[str, dict[str, Any]] = {}
    for c in cases:
        if c["field"] not in worst or c["us_per_event"] > worst[c["field"]]["us_per_event"]:
            worst[c["field"]] = c
    table = Table(title=f"hostile input: worst case per field (~{HOSTILE_BYTES // 1024} KiB value)")
    for col in ("field", "worst case", "µs/event", "x typical event"):
        table.add_column(col)
    for field, c in worst.items():
        table.add_row(field, c["case"], f"{c['us_per_event']:.0f}", f"{c['x_typical']:.0f}")
    Console().print(table)
    for s in Stream:
        print(f"typical {s.value} event: {typical[s] * 1e6:.1f} µs")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "hostile_bytes": HOSTILE_BYTES,
        "typical_us": {s.value: round(typical[s] * 1e6, 2) for s in Stream},
        "worst_per_field": worst,
        "cases": cases,
    }
    (RESULTS / "bench_hostile.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
