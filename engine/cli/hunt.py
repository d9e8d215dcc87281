"""``scamwatch hunt``: retro-hunt the retained input topics over a time range.

``--since`` is a duration back from now (``2h``, ``7d``) or an RFC 3339 time; ``--until``
(default: now) an RFC 3339 time or a duration back from now. Indicators: the store's
(Redis), only those added or changed after a store version (``--indicators-since``), or
feed files loaded into a memory store (``--indicators``, Redis never contacted). Alerts go
to the alerts topic, or to ``--output`` as JSON lines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.scan import FeedSpec, parse_feed_spec
from engine.core.matcher import Matcher
from engine.core.models import IndicatorSnapshot, IndicatorType, Stream, now_ms
from engine.core.processor import RecordProcessor
from engine.core.records import Hunt
from engine.core.timestamps import format_rfc3339, parse_rfc3339
from engine.errors import StoreError
from engine.hunt import (
    AlertSink,
    FileAlertSink,
    HuntSummary,
    KafkaAlertSink,
    changed_indicators,
    feeds_digest,
    hunt_id,
    parse_duration,
    run_hunt,
)
from engine.kafka_io import make_producer
from engine.settings import Settings, load_settings
from engine.store.loading import load_feed
from engine.store.memory import MemoryStore


class HuntStream(StrEnum):
    calls = "calls"
    web = "web"
    all = "all"


@dataclass(frozen=True, slots=True)
class HuntIndicators:
    """What a hunt matches against, and how its id names that."""

    snapshot: IndicatorSnapshot
    label: str  # all | since:VERSION | feeds:<digest>
    described: str  # for the summary
    feed_errors: tuple[str, ...] = ()


def register(app: typer.Typer) -> None:
    """Add ``hunt`` to the root app."""
    app.command("hunt")(hunt)


def parse_moment(text: str, now: int, option: str) -> int:
    """An RFC 3339 time, or a duration back from ``now`` → epoch ms."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected a duration (2h, 7d) or an RFC 3339 time, got {text!r}", param_hint=option
        ) from None


def hunt(
    since: Annotated[
        str,
        typer.Option("--since", help="Start: a duration back from now (2h, 7d) or RFC 3339."),
    ],
    until: Annotated[
        str | None,
        typer.Option("--until", help="End, excluded: RFC 3339 or a duration back (default: now)."),
    ] = None,
    stream: Annotated[
        HuntStream, typer.Option("--stream", help="Which input topics to read.")
    ] = HuntStream.all,
    indicators_since: Annotated[
        int | None,
        typer.Option(
            "--indicators-since",
            min=0,
            metavar="VERSION",
            help="Only indicators added or changed after this store version.",
        ),
    ] = None,
    indicators: Annotated[
        list[str] | None,
        typer.Option(
            "--indicators",
            metavar="[TYPE:]FEED",
            help="Indicator feed file (repeatable), instead of the store's.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write alerts here (JSON lines), not to Kafka."),
    ] = None,
    type_: Annotated[
        IndicatorType | None, typer.Option("--type", help="Type of plain-text feed files.")
    ] = None,
) -> None:
    """Retro-hunt the retained calls/web topics over a time range; retro alert.v1 out."""
    err = Console(stderr=True)
    settings = load_settings()
    now = now_ms()
    since_ms = parse_moment(since, now, "--since")
    until_ms = parse_moment(until, now, "--until") if until is not None else now
    if since_ms >= until_ms:
        raise typer.BadParameter("--since must be before --until", param_hint="--since")
    if indicators_since is not None and indicators:
        raise typer.BadParameter(
            "give --indicators-since or --indicators, not both", param_hint="--indicators"
        )
    feeds = [parse_feed_spec(spec, type_, "--indicators") for spec in indicators or []]
    chosen = _indicators(settings, feeds, indicators_since)
    topics = {
        settings.topics.calls: Stream.CALLS,
        settings.topics.web: Stream.WEB,
    }
    if stream is not HuntStream.all:
        topics = {t: s for t, s in topics.items() if s.value == stream.value}
    record = Hunt(
        id=hunt_id(since_ms, until_ms, topics, chosen.label),
        since=format_rfc3339(since_ms),
        until=format_rfc3339(until_ms),
    )
    matcher = Matcher.build(chosen.snapshot, default_region=settings.processing.default_region)
    processor = RecordProcessor(
        matcher=lambda: matcher,
        alerts_topic=settings.topics.alerts,
        deadletter_topic=settings.topics.deadletter,
        max_record_bytes=settings.processing.max_record_bytes,
        max_output_bytes=None if output else settings.processing.max_output_bytes,
        hunt=record,
    )
    for message in chosen.feed_errors[:100]:
        err.print(f"[yellow]feed:[/] {message}", highlight=False)
    held = ", ".join(f"{n} {t}" for t, n in matcher.counts(now).items() if n)
    err.print(f"hunt {record.id}: {record.since} → {record.until}", highlight=False)
    err.print(f"indicators from {chosen.described}: {held or 'none'}", highlight=False)
    try:
        summary = asyncio.run(_run(settings, topics, since_ms, until_ms, processor, output, err))
    except OSError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    target = str(output) if output else settings.topics.alerts
    print_summary(err, record, summary, target)


def _indicators(
    settings: Settings, feeds: list[FeedSpec], indicators_since: int | None
) -> HuntIndicators:
    if feeds:
        store = MemoryStore()
        errors: list[str] = []
        for path, feed_type in feeds:
            report = load_feed(
                path, store, type_=feed_type, region=settings.processing.default_region
            )
            errors.extend(str(e) for e in report.errors)
        label = feeds_digest((path.name, path.read_bytes()) for path, _ in feeds)
        names = ", ".join(path.name for path, _ in feeds)
        return HuntIndicators(store.snapshot(), label, names, tuple(errors))

    from engine.store.redis import RedisStore

    redis = RedisStore.from_settings(settings.redis)
    if indicators_since is None:
        snapshot = redis.snapshot()
        return HuntIndicators(snapshot, "all", f"Redis (version {snapshot.version})")
    changes = redis.changes_since(indicators_since)
    if changes is None:
        raise StoreError(
            f"the store's change log no longer reaches back to version {indicators_since}: "
            "hunt with all indicators (no --indicators-since)"
        )
    allowlist = tuple(redis.iter(allowlist=True))
    snapshot = IndicatorSnapshot(changes.to_version, changed_indicators(changes), allowlist)
    described = f"Redis, changed after version {indicators_since} (now {changes.to_version})"
    return HuntIndicators(snapshot, f"since:{indicators_since}", described)


async def _run(
    settings: Settings,
    topics: dict[str, Stream],
    since_ms: int,
    until_ms: int,
    processor: RecordProcessor,
    output: Path | None,
    err: Console,
) -> HuntSummary:
    with Progress(
        TextColumn("[bold]hunt[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records · {task.fields[alerts]} alerts"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("hunt", total=None, alerts=0)

        def on_progress(summary: HuntSummary, read: int) -> None:
            progress.update(task, advance=read, alerts=summary.alerts)

        sink: AlertSink
        if output is not None:
            with output.open("wb") as fh:
                sink = FileAlertSink(fh)
                summary = await run_hunt(
                    settings.kafka, topics, since_ms=since_ms, until_ms=until_ms,
                    processor=processor, sink=sink,
                    on_plan=lambda total: progress.update(task, total=total),
                    on_progress=on_progress,
                )  # fmt: skip
        else:
            producer = await make_producer(settings.kafka, client_id="scamwatch-hunt")
            try:
                sink = KafkaAlertSink(producer, settings.topics.alerts)
                summary = await run_hunt(
                    settings.kafka, topics, since_ms=since_ms, until_ms=until_ms,
                    processor=processor, sink=sink,
                    on_plan=lambda total: progress.update(task, total=total),
                    on_progress=on_progress,
                )  # fmt: skip
            finally:
                await producer.stop()
        total = progress.tasks[0].total
        if total is not None:
            progress.update(task, completed=total)
    return summary


def print_summary(console: Console, record: Hunt, summary: HuntSummary, target: str) -> None:
    """Events read, alerts by rule, events/s."""
    table = Table(title=f"hunt {record.id}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("partitions", summary.partitions),
        ("events read", summary.events),
        *((f"  {s}", n) for s, n in sorted(summary.by_stream.items())),
        ("invalid (not re-sent)", summary.invalid),
        ("outside the window", summary.out_of_range),
        ("matched", summary.matched),
        ("alerts", summary.alerts),
        *((f"  {rule}", n) for rule, n in sorted(summary.alerts_by_rule.items())),
    ):
        table.add_row(name, str(value))
    table.add_row("events/s", f"{summary.rate:,.0f}")
    console.print(table)
    console.print(
        f"{summary.alerts} retro alert(s) to {target} in {summary.elapsed_s:.2f} s", highlight=False
    )
