"""The ``scamwatch`` command line. Each concern registers its commands from its own module."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from engine import __version__
from engine.errors import ScamwatchError

err_console = Console(stderr=True)


def print_error(exc: ScamwatchError) -> None:
    """An expected failure (bad setting, Redis down, bad feed with --strict) as one line."""
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)


def region_option(region: str | None, default: str) -> str:
    """``--region`` as an ISO 3166 alpha-2 code, else ``default`` (the settings'); a bad one
    is a usage error naming ``--region`` (exit code 2), the same from every command."""
    from engine.core.region import parse_region

    if region is None:
        return default
    try:
        return parse_region(region)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--region") from None


class ErrorBoundary(TyperGroup):
    """The CLI's one error boundary: a :class:`ScamwatchError` from any command below this
    group is printed as one line (with where it came from) and exits with code 2."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click: no public type)
        try:
            return super().invoke(ctx)
        except ScamwatchError as exc:
            print_error(exc)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=ErrorBoundary,
    name="scamwatch",
    help="Streaming indicator matching against tech-support scam fraud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scamwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """scamwatch: Kafka events in, scam alerts out."""


def _register() -> None:
    from engine.cli import hunt, indicators, scan, stack, stream, worker

    for module in (stack, indicators, scan, hunt, stream, worker):
        module.register(app)


def main() -> None:
    _register()
    app()
