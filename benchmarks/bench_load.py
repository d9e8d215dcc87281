"""Load benchmark: a seeded 1,000,000-line indicator CSV into the real Redis.

    .venv/bin/python benchmarks/bench_load.py [--lines N] [--seed S] [--redis-url URL]

Generates a CSV with a realistic mix (phone numbers in E.164 and national/written formats,
number blocks, domains, URLs, keywords; a few duplicates and a few bad lines), then measures
in the same run:

1. ``csv.reader`` alone over the file (baseline: the floor any CSV loader pays);
2. ``read_feed`` (parse + validate + normalize, no Redis);
3. the load into Redis the way ``scamwatch indicators load`` does it (its own key prefix);
4. the same feed loaded again (everything unchanged, the version must not move);
5. ``snapshot()`` of the loaded store (what a worker does at start).

Reports lines/s, Redis memory (INFO memory before/after) and bytes per entry in a table, and
writes ``benchmarks/results/bench_load.json``. The keys are deleted afterwards. Target: the
1M-line load (step 3) in at most 60 s on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from engine.core.feeds import read_feed
from engine.core.models import Indicator
from engine.settings import load_settings
from engine.store.loading import LOAD_BATCH, LoadReport, load_feed
from engine.store.redis import RedisStore

TARGET_SECONDS = 60.0
RESULTS = Path(__file__).resolve().parent / "results" / "bench_load.json"
_TLDS = ("com", "net", "org", "info", "online", "site", "support", "xyz", "co.uk", "in")
_WORDS = (
    "microsoft",
    "windows",
    "amazon",
    "prime",
    "support",
    "helpdesk",
    "refund",
    "secure",
    "alert",
    "billing",
    "account",
    "techcare",
    "pc",
    "fix",
    "care",
    "desk",
    "center",
    "online",
    "service",
    "help",
)
_SEVERITIES = ("low", "medium", "high", "critical")


def _phone(rng: random.Random) -> str:
    """A syntactically valid number, written the ways feeds write them."""
    area = rng.choice(("800", "888", "877", "866", "855", "844", "833", "212", "415", "646"))
    exchange = rng.randint(200, 999)
    line = rng.randint(0, 9999)
    style = rng.random()
    if style < 0.70:
        return f"+1{area}{exchange}{line:04d}"  # already E.164: the fast path
    if style < 0.80:
        return f"({area}) {exchange}-{line:04d}"
    if style < 0.88:
        return f"1-{area}-{exchange}-{line:04d}"
    if style < 0.94:
        return f"+44 20 7946 {rng.randint(0, 9999):04d}"
    return f"+91 98{rng.randint(10_000_000, 99_999_999)}"


def _domain(rng: random.Random) -> str:
    words = rng.sample(_WORDS, rng.randint(2, 3))
    return f"{'-'.join(words)}{rng.randint(1, 99999)}.{rng.choice(_TLDS)}"


def generate(path: Path, lines: int, seed: int) -> dict[str, int]:
    """Write the CSV; returns how many lines of each kind."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["type", "value", "source", "severity", "confidence", "tags", "valid_until"]
        )
        for _ in range(lines):
            roll = rng.random()
            if roll < 0.50:
                kind, value = "phone", _phone(rng)
            elif roll < 0.53:
                kind, value = (
                    "phone_prefix",
                    f"+1{rng.choice(('800', '888', '877'))}{rng.randint(200, 999)}",
                )
            elif roll < 0.80:
                kind, value = "domain", _domain(rng)
                if rng.random() < 0.1:
                    value = value.upper() + "."
            elif roll < 0.95:
                kind = "url"
                scheme = "https" if rng.random() < 0.5 else "http"
                page = f"{rng.choice(_WORDS)}/{rng.randint(1, 10**6)}"
                value = f"{scheme}://{_domain(rng)}/{page}"
            elif roll < 0.999:
                kind, value = (
                    "keyword",
                    f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{rng.randint(1, 9999)}",
                )
            else:
                kind, value = "phone", "not a number"  # 0.1 % bad lines, reported and skipped
            counts[kind] = counts.get(kind, 0) + 1
            until = "" if rng.random() < 0.8 else "2030-01-01T00:00:00Z"
            writer.writerow(
                [
                    kind,
                    value,
                    f"partner-{rng.randint(1, 8)}",
                    rng.choice(_SEVERITIES),
                    rng.randint(30, 100),
                    rng.choice(("microsoft;tech-support", "amazon;refund", "windows", "")),
                    until,
                ]
            )
    return counts


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def _load(path: Path, store: RedisStore) -> LoadReport:
    """Exactly what ``scamwatch indicators load FILE`` does, minus the printing."""
    return load_feed(path, store, format="csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--redis-url", default=None, help="default: SCAMWATCH_REDIS_URL")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console()
    url = args.redis_url or load_settings().redis.url.get_secret_value()
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    client = redis.Redis.from_url(url)
    store = RedisStore(client, prefix=prefix)
    redis_version = str(client.info("server")["redis_version"])

    with tempfile.TemporaryDirectory(prefix="scamwatch-bench-") as tmp:
        feed = Path(tmp) / "indicators.csv"
        started = time.perf_counter()
        mix = generate(feed, args.lines, args.seed)
        generate_s = time.perf_counter() - started
        console.print(
            f"generated {args.lines:,} lines ({feed.stat().st_size / 1e6:.0f} MB) "
            f"in {generate_s:.1f} s; mix {mix}"
        )
        try:
            gc.collect()
            started = time.perf_counter()
            with feed.open(newline="", encoding="utf-8") as handle:
                raw_rows = sum(1 for _ in csv.reader(handle)) - 1
            baseline_s = time.perf_counter() - started

            started = time.perf_counter()
            parsed = sum(1 for item in read_feed(feed, format="csv") if isinstance(item, Indicator))
            parse_s = time.perf_counter() - started

            memory_before = _used_memory(client)
            started = time.perf_counter()
            first = _load(feed, store)
            load_s = time.perf_counter() - started
            memory_after = _used_memory(client)
            version = store.version()

            started = time.perf_counter()
            again = _load(feed, store)
            reload_s = time.perf_counter() - started
            version_after_reload = store.version()

            started = time.perf_counter()
            snapshot = store.snapshot()
            snapshot_s = time.perf_counter() - started
            entries = len(snapshot.indicators)
            del snapshot
        finally:
            keys = store.keys()
            client.delete(*keys)
            client.close()

    valid = sum(first.by_type.values())
    invalid = len(first.errors)
    assert raw_rows == args.lines and parsed == valid
    assert again.result.added == again.result.updated == 0
    assert again.result.unchanged == valid
    assert version_after_reload == version, "reloading moved the version"
    memory_delta = memory_after - memory_before
    results: dict[str, Any] = {
        "lines": args.lines,
        "seed": args.seed,
        "mix": mix,
        "valid": valid,
        "invalid": invalid,
        "entries": entries,
        "added": first.result.added,
        "updated": first.result.updated,
        "unchanged": first.result.unchanged,
        "version": version,
        "baseline_csv_reader_s": round(baseline_s, 3),
        "parse_normalize_s": round(parse_s, 3),
        "load_s": round(load_s, 3),
        "load_lines_per_s": round(args.lines / load_s),
        "load_vs_csv_reader": round(load_s / baseline_s, 1),
        "load_vs_parse_only": round(load_s / parse_s, 2),
        "reload_unchanged_s": round(reload_s, 3),
        "snapshot_s": round(snapshot_s, 3),
        "redis_used_memory_before": memory_before,
        "redis_used_memory_after": memory_after,
        "redis_memory_per_entry_bytes": round(memory_delta / max(entries, 1)),
        "target_load_s": TARGET_SECONDS,
        "target_met": load_s <= TARGET_SECONDS * args.lines / 1_000_000,
        "batch": LOAD_BATCH,
        "python": platform.python_version(),
        "redis_version": redis_version,
        "generated_s": round(generate_s, 1),
    }

    table = Table(
        title=f"indicator load: {args.lines:,} CSV lines into Redis", title_justify="left"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("lines/s", justify="right")
    table.add_column("× csv.reader", justify="right")
    for name, seconds in (
        ("csv.reader only (baseline)", baseline_s),
        ("read_feed: parse + normalize", parse_s),
        ("load into Redis (the CLI path)", load_s),
        ("reload, all unchanged", reload_s),
    ):
        table.add_row(
            name, f"{seconds:.2f}", f"{args.lines / seconds:,.0f}", f"{seconds / baseline_s:.1f}"
        )
    table.add_row("snapshot() of the store", f"{snapshot_s:.2f}", "", "")
    table.add_section()
    table.add_row("entries / invalid lines", f"{entries:,} / {invalid:,}", "", "")
    table.add_row(
        "Redis used_memory before → after",
        f"{memory_before / 2**20:,.0f} → {memory_after / 2**20:,.0f} MiB",
        "",
        "",
    )
    table.add_row("Redis bytes per entry", f"{results['redis_memory_per_entry_bytes']:,}", "", "")
    verdict = "met" if results["target_met"] else "MISSED"
    table.add_row(f"target ≤ {TARGET_SECONDS:.0f} s per 1M lines", verdict, "", "")
    console.print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {args.output}")
    return 0 if results["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
