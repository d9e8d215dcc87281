"""``scamwatch indicators``: load feeds into the Redis store and manage what is there."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import click
import orjson
import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from engine.cli import ErrorBoundary, region_option
from engine.core.feeds import (
    FORMATS,
    LINE_FORMATS,
    FeedContext,
    format_timestamp,
    guess_format,
    indicator_from_record,
    indicator_to_record,
    parse_mapping,
    stix_objects,
)
from engine.core.models import Indicator, IndicatorType, Severity, now_ms
from engine.core.normalize import normalize
from engine.errors import ConfigError, FeedError, NormalizationError
from engine.settings import Settings, load_settings
from engine.store.loading import LoadReport, load_feed, load_items
from engine.store.positions import PullPositions
from engine.store.redis import RedisStore

MAX_ERRORS_SHOWN = 20
MAX_SKIP_REASONS_SHOWN = 5
_TYPE_ORDER = {t: i for i, t in enumerate(IndicatorType)}

indicators_app = typer.Typer(
    cls=ErrorBoundary,
    help="Load indicator feeds into Redis and manage indicators and the allowlist.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


class FeedFormat(StrEnum):
    CSV = "csv"
    TXT = "txt"
    JSONL = "jsonl"
    STIX = "stix"
    MISP = "misp"
    HOSTS = "hosts"
    URLS = "urls"
    URLHAUS = "urlhaus"
    PHISHTANK = "phishtank"
    FTC_DNC = "ftc-dnc"


assert tuple(FeedFormat) == FORMATS  # one list of formats


def register(app: typer.Typer) -> None:
    """Add ``scamwatch indicators ...`` to the root app."""
    app.add_typer(indicators_app, name="indicators")


@indicators_app.callback()
def _group(
    ctx: typer.Context,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix", hidden=True, help="Redis key prefix (default SCAMWATCH_REDIS_PREFIX)."
        ),
    ] = None,
) -> None:
    """Load indicator feeds into Redis and manage indicators and the allowlist."""
    ctx.obj = load_settings(redis={"prefix": prefix} if prefix else {})


def _open_store(ctx: typer.Context) -> RedisStore:
    settings: Settings = ctx.obj
    return RedisStore.from_settings(settings.redis)


def _region(ctx: typer.Context, region: str | None) -> str:
    """--region, or the default from settings; refused here rather than on every line."""
    settings: Settings = ctx.obj
    return region_option(region, settings.processing.default_region)


# the options `load` and `pull taxii` share
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="Region for national-format numbers (default from settings)."),
]
LoadAllowlistOption = Annotated[bool, typer.Option("--allowlist", help="Load into the allowlist.")]


def _side(allowlist: bool) -> str:
    return "allowlist" if allowlist else "indicators"


# --------------------------------------------------------------------------- load


@indicators_app.command("load")
def load(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    format: Annotated[
        FeedFormat | None,
        typer.Option("--format", help="Feed format; told from the content when absent."),
    ] = None,
    type_: Annotated[
        IndicatorType | None,
        typer.Option("--type", help="Type of every value (plain text) or of records without one."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source of records that name none (default: the file name)."),
    ] = None,
    region: RegionOption = None,
    allowlist: LoadAllowlistOption = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Any invalid line fails the whole load, nothing written."),
    ] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FIELD=COLUMN",
            help="Read any CSV: the column holding an indicator.v1 field, or the field's value "
            "for every row when no column has that name (--map value=Phone --map type=phone). "
            "Repeatable.",
        ),
    ] = None,
) -> None:
    """Import a feed into the store: CSV, TXT, JSONL, STIX 2.1 bundle, MISP event, hosts
    file, URL list, URLhaus / PhishTank / FTC Do-Not-Call CSV, any CSV through --map."""
    started = time.perf_counter()
    mapping = parse_mapping(map_ or [])
    fmt = "csv" if mapping else format.value if format else guess_format(file)
    if mapping and format not in (None, FeedFormat.CSV):
        raise FeedError(f"--map reads a CSV; it cannot be used with --format {format}")
    region_code = _region(ctx, region)
    store = _open_store(ctx)
    version_before = store.version()  # fail early, before reading, when Redis is down
    total = _count_lines(file) if fmt in LINE_FORMATS else None
    with _progress() as progress:
        task = progress.add_task(f"{file.name} ({fmt})", total=total)
        report = load_feed(
            file,
            store,
            format=fmt,
            type_=type_,
            source=source,
            region=region_code,
            mapping=mapping,
            allowlist=allowlist,
            strict=strict,
            on_progress=lambda n: progress.advance(task, n),
        )
        progress.update(task, completed=total if total is not None else report.items)
    _print_problems(report)
    if not report.written:
        err_console.print(
            f"[bold red]--strict:[/] {len(report.errors)} invalid line(s) in {file}; "
            "nothing written",
            highlight=False,
        )
        raise typer.Exit(1)
    _print_load_summary(f"{file.name} ({fmt})", allowlist, report, version_before, store.version())
    console.print(f"took {time.perf_counter() - started:.1f} s", style="dim")
    if report.errors and not report.by_type:
        raise typer.Exit(1)  # nothing usable at all: most likely a wrong --type/--format


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count, 1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # no bar in logs and pipes
    )


def _print_problems(report: LoadReport) -> None:
    """The invalid lines (the first few), then the skipped entries by reason, the commonest
    first: there may be thousands (file hashes)."""
    errors = report.errors
    for error in errors[:MAX_ERRORS_SHOWN]:
        err_console.print(f"[yellow]invalid[/] {error}", highlight=False, soft_wrap=True)
    if len(errors) > MAX_ERRORS_SHOWN:
        err_console.print(f"[yellow]… and {len(errors) - MAX_ERRORS_SHOWN} more[/]")
    reasons = Counter(entry.reason for entry in report.skipped)
    for reason, count in reasons.most_common(MAX_SKIP_REASONS_SHOWN):
        err_console.print(f"[dim]skipped[/] {count} × {reason}", highlight=False, soft_wrap=True)
    if len(reasons) > MAX_SKIP_REASONS_SHOWN:
        err_console.print(f"[dim]… and {len(reasons) - MAX_SKIP_REASONS_SHOWN} more reasons[/]")


def _print_load_summary(
    what: str, allowlist: bool, report: LoadReport, version_before: int, version_after: int
) -> None:
    result, invalid, skipped, by_type = (
        report.result,
        len(report.errors),
        len(report.skipped),
        report.by_type,
    )
    table = Table(title=f"{what} → {_side(allowlist)}", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    loaded = result.added + result.updated
    table.add_row("loaded (added / updated)", f"{loaded} ({result.added} / {result.updated})")
    table.add_row("unchanged", str(result.unchanged))
    table.add_row("invalid", str(invalid), style="yellow" if invalid else None)
    table.add_row("skipped (not matched by scamwatch)", str(skipped))
    table.add_section()
    for type_ in sorted(by_type, key=_TYPE_ORDER.__getitem__):
        table.add_row(f"valid {type_.value}", str(by_type[type_]))
    table.add_section()
    table.add_row("version", f"{version_before} → {version_after}")
    console.print(table)


# --------------------------------------------------------------------------- add / remove


@indicators_app.command("add")
def add(
    ctx: typer.Context,
    type_: Annotated[IndicatorType, typer.Argument(metavar="TYPE")],
    value: Annotated[str, typer.Argument()],
    source: Annotated[str, typer.Option("--source")] = "cli",
    severity: Annotated[Severity, typer.Option("--severity")] = Severity.HIGH,
    confidence: Annotated[int | None, typer.Option("--confidence", min=0, max=100)] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    valid_until: Annotated[
        str | None, typer.Option("--valid-until", help="RFC 3339 date-time or epoch milliseconds.")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    reference: Annotated[str, typer.Option("--reference")] = "",
    region: Annotated[str | None, typer.Option("--region")] = None,
    allowlist: Annotated[bool, typer.Option("--allowlist", help="Add to the allowlist.")] = False,
) -> None:
    """Add one indicator (merged with the entry already there, if any)."""
    indicator = _checked(
        {
            "type": type_.value,
            "value": value,
            "source": source,
            "severity": severity.value,
            "confidence": confidence,
            "tags": tag or [],
            "valid_until": valid_until,
            "description": description,
            "reference": reference,
        },
        source=source,
        region=_region(ctx, region),
    )
    store = _open_store(ctx)
    result = store.upsert([indicator], allowlist=allowlist)
    what = "added" if result.added else "updated" if result.updated else "unchanged"
    console.print(
        f"{what}: {indicator.type.value} {indicator.value} ({_side(allowlist)}, "
        f"version {store.version()})",
        highlight=False,
    )


def _checked(rec: dict[str, object], *, source: str, region: str) -> Indicator:
    try:
        return indicator_from_record(rec, source=source, region=region)
    except NormalizationError as exc:
        raise FeedError(f"value: {exc}") from None


@indicators_app.command("remove")
def remove(
    ctx: typer.Context,
    type_: Annotated[IndicatorType, typer.Argument(metavar="TYPE")],
    value: Annotated[str, typer.Argument()],
    region: Annotated[str | None, typer.Option("--region")] = None,
    allowlist: Annotated[
        bool, typer.Option("--allowlist", help="Remove from the allowlist.")
    ] = False,
) -> None:
    """Remove one indicator (the value is normalized first, as on load)."""
    normalized = normalize(type_, value, _region(ctx, region))
    store = _open_store(ctx)
    if not store.remove(type_, normalized, allowlist=allowlist):
        err_console.print(
            f"not found: {type_.value} {normalized} ({_side(allowlist)})", highlight=False
        )
        raise typer.Exit(1)
    console.print(
        f"removed: {type_.value} {normalized} ({_side(allowlist)}, version {store.version()})",
        highlight=False,
    )


# --------------------------------------------------------------------------- list / stats


@indicators_app.command("list")
def list_(
    ctx: typer.Context,
    type_: Annotated[IndicatorType | None, typer.Option("--type")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    allowlist: Annotated[bool, typer.Option("--allowlist", help="List the allowlist.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many rows.")
    ] = 200,
) -> None:
    """A table of indicators (or allowlist entries), by type and value."""
    store = _open_store(ctx)
    entries = _sorted(store.iter(type_=type_, source=source, allowlist=allowlist))
    at = now_ms()
    table = Table(
        title=f"{_side(allowlist)} ({len(entries)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # fewer rules: more room for the values in 80 columns
    )
    shown = entries[:limit]
    # pipes and files get the whole rows; a narrow terminal gets no tags column
    out = console if console.is_terminal else Console(width=max(console.width, 200))
    width = out.width
    with_tags = width >= 120
    table.add_column("type", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("sources", overflow="fold")
    table.add_column("severity/conf.", no_wrap=True)
    table.add_column("until (UTC)", no_wrap=True)
    if with_tags:
        table.add_column("tags", overflow="fold")
    for ind in shown:
        expired = ind.valid_until is not None and ind.valid_until < at
        cells = [
            ind.type.value,
            ind.value,
            " ".join(ind.sources),
            f"{ind.severity.value}/{ind.confidence}",
            (format_timestamp(ind.valid_until) or "")[:10],  # the date is enough here
        ]
        if with_tags:
            cells.append(" ".join(ind.tags))
        table.add_row(*cells, style="red" if expired else None)
    out.print(table)
    if len(entries) > limit:
        console.print(f"… and {len(entries) - limit} more (--limit)", style="dim")


@indicators_app.command("stats")
def stats(ctx: typer.Context) -> None:
    """Counts by type and by source, allowlist counts, expired entries and the version."""
    store = _open_store(ctx)
    figures = store.stats(now_ms())
    table = Table(title=f"indicator store (version {figures.version})", title_justify="left")
    table.add_column("type")
    table.add_column("indicators", justify="right")
    table.add_column("allowlist", justify="right")
    for type_ in IndicatorType:
        table.add_row(
            type_.value,
            str(figures.by_type.get(type_.value, 0)),
            str(figures.allowlist_by_type.get(type_.value, 0)),
        )
    table.add_section()
    table.add_row(
        "total",
        str(sum(figures.by_type.values())),
        str(sum(figures.allowlist_by_type.values())),
        style="bold",
    )
    table.add_row("expired (not yet purged)", str(figures.expired), "")
    console.print(table)
    sources = Table(title="indicators by source", title_justify="left")
    sources.add_column("source")
    sources.add_column("indicators", justify="right")
    for name, count in sorted(figures.by_source.items(), key=lambda kv: (-kv[1], kv[0])):
        sources.add_row(name, str(count))
    console.print(sources)


@indicators_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Remove the entries past their valid_until (they already never match)."""
    store = _open_store(ctx)
    purged = store.purge_expired(now_ms())
    console.print(f"purged {purged} expired entries (version {store.version()})")


@indicators_app.command("export")
def export(
    ctx: typer.Context,
    allowlist: Annotated[bool, typer.Option("--allowlist", help="Export the allowlist.")] = False,
) -> None:
    """JSON lines of indicator.v1 on stdout, sorted by type and value (``load --format
    jsonl`` takes them back unchanged)."""
    store = _open_store(ctx)
    out = click.get_binary_stream("stdout")
    for ind in _sorted(store.iter(allowlist=allowlist)):
        out.write(orjson.dumps(indicator_to_record(ind)) + b"\n")
    out.flush()


def _sorted(indicators: Iterator[Indicator]) -> list[Indicator]:
    return sorted(indicators, key=lambda ind: (_TYPE_ORDER[ind.type], ind.value))


# --------------------------------------------------------------------------- pull

pull_app = typer.Typer(
    cls=ErrorBoundary,
    help="Pull indicators from a feed server (TAXII 2.1).",
    no_args_is_help=True,
)
indicators_app.add_typer(pull_app, name="pull")


@pull_app.command("taxii")
def pull_taxii(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The TAXII 2.1 API root (https://host/api1/).")],
    collection: Annotated[
        str, typer.Option("--collection", help="The collection's id (or alias).")
    ],
    added_after: Annotated[
        str | None,
        typer.Option(
            "--added-after",
            metavar="TIME",
            help="Objects added after this RFC 3339 time (default: after the last pull's).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source of the indicators (default: taxii:COLLECTION)."),
    ] = None,
    region: RegionOption = None,
    allowlist: LoadAllowlistOption = False,
) -> None:
    """Import the STIX 2.1 indicators of a TAXII 2.1 collection, page by page: only those
    added since the last pull of that collection (remembered in Redis), or after
    --added-after. Credentials: SCAMWATCH_TAXII_USERNAME / _PASSWORD / _CAFILE."""
    # here, not at the top: a broken TAXII install breaks this command only
    from engine.taxii import DATE_ADDED_LAST, later, open_collection, parse_added_after

    started = time.perf_counter()
    settings: Settings = ctx.obj
    try:
        since = parse_added_after(added_after) if added_after is not None else None
    except ValueError as exc:
        raise ConfigError("--added-after", str(exc)) from None
    region_code = _region(ctx, region)
    store = _open_store(ctx)
    version_before = store.version()  # fail early, before the server, when Redis is down
    positions = PullPositions(store.client, prefix=store.prefix)
    with open_collection(url, collection, settings.taxii) as taxii:
        remembered = positions.get(taxii.api_root_url, taxii.id)
        since = since or remembered
        feed = FeedContext(
            file=taxii.url,
            source=source or f"taxii:{taxii.alias or taxii.id}",
            region=region_code,
            type_=None,
        )
        pulled = _PulledPages()
        with _progress() as progress:
            task = progress.add_task(f"{taxii.title} (taxii)", total=None)

            def objects() -> Iterator[object]:
                for page in taxii.pages(added_after=since):
                    pulled.pages += 1
                    pulled.objects += len(page.objects)
                    pulled.date_added_last = later(pulled.date_added_last, page.date_added_last)
                    progress.update(
                        task,
                        completed=pulled.objects,
                        description=f"{taxii.title} (taxii, page {pulled.pages})",
                    )
                    yield from page.objects

            report = load_items(stix_objects(objects(), feed), store, allowlist=allowlist)
        _print_problems(report)
        console.print(
            f"{taxii.title} ({taxii.url}): {pulled.objects} object(s) in {pulled.pages} "
            f"page(s) added after {since or 'the start'}",
            highlight=False,
            soft_wrap=True,
        )
        _print_load_summary(
            f"{taxii.id} (taxii)", allowlist, report, version_before, store.version()
        )
        # only now that every indicator is written: a failed pull is pulled again
        following = remembered
        if pulled.date_added_last is not None:
            following = positions.advance(taxii.api_root_url, taxii.id, pulled.date_added_last)
        elif pulled.objects:
            err_console.print(
                f"[yellow]the server sent no {DATE_ADDED_LAST}[/]: the next pull asks from "
                f"{remembered or 'the start'} again",
                highlight=False,
            )
        console.print(f"next pull: objects added after {following or 'the start'}", highlight=False)
    console.print(f"took {time.perf_counter() - started:.1f} s", style="dim")
    if report.errors and not report.by_type:
        raise typer.Exit(1)  # nothing usable at all


@dataclass(slots=True)
class _PulledPages:
    pages: int = 0
    objects: int = 0
    date_added_last: str | None = None
