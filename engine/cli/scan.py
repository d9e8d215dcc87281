"""``scamwatch scan``: match a JSON-lines file of events offline (retro-hunt, no Kafka).

Indicators come from Redis (``SCAMWATCH_REDIS_URL``, ``SCAMWATCH_REDIS_PREFIX``) unless
``--indicators`` feed files are given, in which case they are read into a memory store and
Redis is never contacted. ``--allowlist`` files are added to whichever allowlist is in use.
A feed is ``PATH`` or ``TYPE:PATH`` (``domain:scam_domains.txt``): the type of a plain-text
feed's values, which ``--type`` gives for every feed that names none.

Alerts are alert.v1 JSON lines on stdout (or ``--output``); counts and every invalid line
(with its line number and reason) go to stderr; bad lines never stop the scan. A ``.gz`` file
is read compressed. An offline alert's ``source`` is ``{topic: <file name>, partition: 0,
offset: <line number, from 1>}``. Expiry is judged at the time of the scan.
"""

from __future__ import annotations

import gzip
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.table import Table

from engine.cli import region_option
from engine.core.matcher import Matcher
from engine.core.models import (
    IndicatorSnapshot,
    IndicatorType,
    SourcePosition,
    Stream,
)
from engine.core.processor import RecordProcessor
from engine.settings import RedisSettings, load_settings
from engine.store.loading import load_feed
from engine.store.memory import MemoryStore

MAX_LISTED_ERRORS = 100  # invalid lines listed one by one; the rest are counted


@dataclass
class ScanSummary:
    """What one scan saw."""

    events: int = 0
    matched: int = 0
    clean: int = 0
    invalid: int = 0
    unparsed: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)
    feed_errors: list[str] = field(default_factory=list)
    indicator_source: str = ""
    indicator_counts: dict[str, int] = field(default_factory=dict)

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_rule.values())


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the root app."""
    app.command("scan")(scan)


def scan(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON-lines events."),
    ],
    stream: Annotated[Stream, typer.Option("--stream", help="What the file holds.")],
    indicators: Annotated[
        list[str] | None,
        typer.Option(
            "--indicators",
            metavar="[TYPE:]FEED",
            help="Indicator feed file, any feed format (repeatable). Without it: Redis.",
        ),
    ] = None,
    allowlist: Annotated[
        list[str] | None,
        typer.Option(
            "--allowlist", metavar="[TYPE:]FEED", help="Allowlist feed file (repeatable)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write alerts here, not stdout.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region for national-format numbers (default: settings)."),
    ] = None,
    type_: Annotated[
        IndicatorType | None,
        typer.Option("--type", help="Indicator type of plain-text feed files."),
    ] = None,
) -> None:
    """Match a JSON-lines file of call or web events offline; alert.v1 lines out."""
    err = Console(stderr=True)
    settings = load_settings()
    chosen_region = region_option(region or None, settings.processing.default_region)
    indicator_feeds = [parse_feed_spec(spec, type_, "--indicators") for spec in indicators or []]
    allowlist_feeds = [parse_feed_spec(spec, type_, "--allowlist") for spec in allowlist or []]
    try:
        summary = ScanSummary()
        snapshot = load_snapshot(
            indicator_feeds,
            allowlist_feeds,
            region=chosen_region,
            summary=summary,
            redis=settings.redis,
        )
        matcher = Matcher.build(snapshot, default_region=chosen_region)
        summary.indicator_counts = {str(t): n for t, n in matcher.counts().items()}
        with _open_output(output) as sink:
            scan_file(file, stream, matcher, sink, summary, settings.processing.max_record_bytes)
    except OSError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    print_summary(err, file, summary)


FeedSpec = tuple[Path, IndicatorType | None]


def parse_feed_spec(spec: str, default_type: IndicatorType | None, option: str) -> FeedSpec:
    """``PATH`` or ``TYPE:PATH`` → (path, type of plain-text values or None)."""
    type_ = default_type
    path = Path(spec)
    head, sep, rest = spec.partition(":")
    if sep and head in IndicatorType.__members__.values() and not path.exists():
        type_, path = IndicatorType(head), Path(rest)
    if not path.is_file():
        raise typer.BadParameter(f"{spec!r}: no such file", param_hint=option)
    return path, type_


def load_snapshot(
    indicator_feeds: list[FeedSpec],
    allowlist_feeds: list[FeedSpec],
    *,
    region: str,
    summary: ScanSummary,
    redis: RedisSettings,
) -> IndicatorSnapshot:
    """From feed files into a memory store (no Redis), or else Redis's snapshot; allowlist
    files are added either way."""
    files = MemoryStore()
    _load_feeds(files, allowlist_feeds, region, summary, allowlist=True)
    if indicator_feeds:
        _load_feeds(files, indicator_feeds, region, summary, allowlist=False)
        summary.indicator_source = ", ".join(path.name for path, _ in indicator_feeds)
        return files.snapshot()

    from engine.store.redis import RedisStore

    snapshot = RedisStore.from_settings(redis).snapshot()
    summary.indicator_source = f"Redis (version {snapshot.version})"
    extra_allow = files.snapshot().allowlist
    if not extra_allow:
        return snapshot
    return IndicatorSnapshot(
        version=snapshot.version,
        indicators=snapshot.indicators,
        allowlist=snapshot.allowlist + extra_allow,
    )


def _load_feeds(
    store: MemoryStore,
    feeds: list[FeedSpec],
    region: str,
    summary: ScanSummary,
    *,
    allowlist: bool,
) -> None:
    """Each feed into ``store``; its bad lines into the summary (a skipped entry, such as a
    file hash, is no error)."""
    for path, type_ in feeds:
        report = load_feed(path, store, type_=type_, region=region, allowlist=allowlist)
        summary.feed_errors.extend(str(error) for error in report.errors)


def scan_file(
    path: Path,
    stream: Stream,
    matcher: Matcher,
    sink: IO[bytes],
    summary: ScanSummary,
    max_record_bytes: int,
) -> ScanSummary:
    """Match every line of ``path`` exactly as a worker matches a record (the same
    :class:`RecordProcessor`); bad lines are counted and listed, never fatal."""
    processor = RecordProcessor(
        matcher=lambda: matcher,
        alerts_topic="alerts",
        deadletter_topic="deadletter",
        max_record_bytes=max_record_bytes,
        max_output_bytes=None,  # a file takes alerts of any size
    )
    opener = gzip.open if path.suffix == ".gz" else open  # old logs are often compressed
    topic = path.name
    with opener(path, "rb") as lines:
        for lineno, line in enumerate(lines, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            source = SourcePosition(topic=topic, partition=0, offset=lineno)
            outcome = processor.process(stream, raw, None, source)
            letter = outcome.deadletter
            if letter is not None:
                summary.invalid += 1
                summary.invalid_lines.append((lineno, f"{letter.reason}: {letter.error}"))
                continue
            summary.events += 1
            summary.unparsed += len(outcome.unparsed)
            if outcome.kind == "clean":
                summary.clean += 1
                continue
            summary.matched += 1
            for (rule, _severity), out in zip(outcome.alerts, outcome.outputs, strict=True):
                summary.alerts_by_rule[rule] += 1
                sink.write(out.value + b"\n")
    return summary


@contextmanager
def _open_output(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with output.open("wb") as sink:
        yield sink


def print_summary(console: Console, path: Path, summary: ScanSummary) -> None:
    """Feed errors, invalid lines (line number and reason) and the counts, on stderr."""
    for message in summary.feed_errors[:MAX_LISTED_ERRORS]:
        console.print(f"[yellow]feed:[/] {message}", highlight=False)
    if len(summary.feed_errors) > MAX_LISTED_ERRORS:
        console.print(f"[yellow]feed:[/] … and {len(summary.feed_errors) - MAX_LISTED_ERRORS} more")
    for lineno, reason in summary.invalid_lines[:MAX_LISTED_ERRORS]:
        console.print(f"[red]invalid[/] {path.name}:{lineno}: {reason}", highlight=False)
    if len(summary.invalid_lines) > MAX_LISTED_ERRORS:
        more = len(summary.invalid_lines) - MAX_LISTED_ERRORS
        console.print(f"[red]invalid[/] … and {more} more lines")

    held = ", ".join(f"{n} {t}" for t, n in summary.indicator_counts.items() if n)
    console.print(f"indicators from {summary.indicator_source}: {held or 'none'}", highlight=False)
    table = Table(title=f"scan of {path.name}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("events", summary.events),
        ("matched", summary.matched),
        ("clean", summary.clean),
        ("invalid", summary.invalid),
        ("unparsed fields", summary.unparsed),
        ("feed errors", len(summary.feed_errors)),
        ("alerts", summary.alerts),
    ):
        table.add_row(name, str(value))
    for rule, count in sorted(summary.alerts_by_rule.items()):
        table.add_row(f"  {rule}", str(count))
    console.print(table)
