"""``scamwatch replay``, ``scamwatch alerts tail`` and ``scamwatch demo``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine.cli import ErrorBoundary
from engine.kafka_io import (
    ReplayStats,
    iter_file_lines,
    iter_records,
    render_alert,
    replay_lines,
)
from engine.settings import KafkaSettings, load_settings

console = Console()
err_console = Console(stderr=True)


class StreamName(StrEnum):
    calls = "calls"
    web = "web"


def replay(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="JSON-lines file of call.v1 or web.v1 events (.gz read as gzip).",
        ),
    ],
    stream: Annotated[StreamName, typer.Option("--stream", help="Which input stream.")],
    rate: Annotated[
        float | None,
        typer.Option(min=0.1, help="Events per second (default: as fast as Kafka takes them)."),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="Topic to send to (default: SCAMWATCH_TOPIC_CALLS / _WEB)."),
    ] = None,
) -> None:
    """Produce a JSON-lines file to the calls or web topic, keyed by partner and subscriber.

    Lines that are not JSON are sent as they are (the worker dead-letters them) and counted."""
    settings = load_settings()
    target = topic or (settings.topics.calls if stream is StreamName.calls else settings.topics.web)
    total = file.stat().st_size
    with Progress(
        TextColumn("[bold]replay[/] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[sent]} events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"{file.name} → {target}", total=total, sent=0)

        def on_progress(stats: ReplayStats, consumed: int) -> None:
            progress.update(task, completed=consumed, sent=stats.sent)

        try:
            stats = asyncio.run(
                replay_lines(
                    iter_file_lines(file),
                    topic=target,
                    kafka=settings.kafka,
                    rate=rate,
                    on_progress=on_progress,
                )
            )
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: the lines before the bar's count were sent")
            raise typer.Exit(130) from None
    err_console.print(
        f"sent [bold]{stats.sent}[/] events ({stats.bytes} bytes) to [bold]{target}[/] "
        f"in {stats.elapsed_s:.2f} s ({stats.rate:,.0f} events/s)"
    )
    if stats.not_json:
        err_console.print(
            f"[yellow]{stats.not_json} line(s) were not JSON objects:[/] sent as-is; "
            "the worker dead-letters them"
        )
    if stats.blank:
        err_console.print(f"{stats.blank} blank line(s) skipped")


alerts_app = typer.Typer(cls=ErrorBoundary, help="Read the alerts topic.", no_args_is_help=True)


@alerts_app.command("tail")
def tail(
    as_json: Annotated[bool, typer.Option("--json", help="Print each alert's raw JSON.")] = False,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest alert kept, not the newest.")
    ] = False,
    max_alerts: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after N alerts.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Stop after S seconds with no new alert.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Topic to read (default: SCAMWATCH_TOPIC_ALERTS).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group to join and commit in (default: none).")
    ] = None,
) -> None:
    """Print alerts as they arrive: one readable line each, or the JSON with --json.

    Joins no consumer group unless --group is given, so it never takes partitions away from
    a SIEM's group."""
    settings = load_settings()
    target = topic or settings.topics.alerts
    seen: list[int] = [0]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        asyncio.run(
            _tail(settings.kafka, target, as_json, from_beginning, max_alerts, timeout, group, seen)
        )
    err_console.print(f"{seen[0]} alert(s) from {target}")


async def _tail(
    kafka: KafkaSettings,
    topic: str,
    as_json: bool,
    from_beginning: bool,
    max_alerts: int | None,
    idle_timeout: float | None,
    group: str | None,
    seen: list[int],
) -> None:
    """Print alerts until --max or --timeout; ``seen[0]`` counts them as they come."""
    records = iter_records(
        kafka, [topic], from_beginning=from_beginning, idle_timeout=idle_timeout, group_id=group
    )
    try:
        async for _, value in records:
            seen[0] += 1
            if as_json:
                sys.stdout.write(value.decode("utf-8", "replace") + "\n")
                sys.stdout.flush()
            else:
                line = render_alert(value)
                if line is None:
                    console.print(f"[yellow]not an alert.v1 record:[/] {value[:200]!r}")
                else:
                    console.print(line, soft_wrap=True)
            if max_alerts is not None and seen[0] >= max_alerts:
                break
    finally:
        await records.aclose()


def demo(
    keep_stack: Annotated[
        bool, typer.Option(help="Leave the Kafka/Redis that the demo started running.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the summary, not each alert.")] = False,
    timeout: Annotated[
        float, typer.Option(min=10, help="Give up after S seconds without every verdict.")
    ] = 90.0,
    calls: Annotated[int, typer.Option(min=20, help="Call events to generate.")] = 300,
    web: Annotated[int, typer.Option(min=20, help="Web events to generate.")] = 300,
    rate: Annotated[float, typer.Option(min=1, help="Replay rate, events/s per stream.")] = 400.0,
    seed: Annotated[int | None, typer.Option(help="Traffic generator seed.")] = None,
) -> None:
    """The whole pipeline on bundled sample data: stack, feeds, worker, traffic, alerts,
    and a summary with precision and recall against the generator's truth."""
    from engine.devtools.demo import DemoOptions, run_demo

    result = run_demo(
        DemoOptions(
            keep_stack=keep_stack,
            quiet=quiet,
            timeout_s=timeout,
            calls=calls,
            web=web,
            rate=rate,
            seed=seed,
        ),
        console=console,
        settings=load_settings(),
    )
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``replay``, ``alerts tail`` and ``demo`` to the root app."""
    app.command("replay")(replay)
    app.add_typer(alerts_app, name="alerts")
    app.command("demo")(demo)
