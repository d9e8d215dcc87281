"""The ``scamwatch`` command line. Each concern registers its commands from its own module."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from engine import __version__
from engine.errors import ScamwatchError

app = typer.Typer(
    name="scamwatch",
    help="Streaming indicator matching against tech-support scam fraud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


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
    from engine.cli import indicators, scan, stack, stream, worker

    for module in (stack, indicators, scan, stream, worker):
        module.register(app)


def main() -> None:
    _register()
    try:
        app()
    except ScamwatchError as exc:
        # expected failures (bad setting, stack down, bad feed with --strict): one clear line
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
