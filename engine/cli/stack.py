"""``scamwatch stack up|down|status``: the local single-node Kafka and Redis."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from engine.cli import ErrorBoundary
from engine.devtools import stack
from engine.settings import load_settings

console = Console()
stack_app = typer.Typer(
    cls=ErrorBoundary, help="Start, stop and check the local Kafka + Redis (loopback only)."
)


def _report(message: str) -> None:
    console.print(f"[cyan]stack[/] {message}")


@stack_app.command("up")
def up() -> None:
    """Start Redis and Kafka on loopback unless they already answer; wait until both work."""
    parts = stack.stack_up(load_settings(), _report)
    _print(parts)


@stack_app.command("down")
def down() -> None:
    """Stop what `stack up` started; anything else is left alone."""
    stopped = stack.stack_down(load_settings(), _report)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing'}")


@stack_app.command("status")
def status() -> None:
    """Show each part, its address, and whether scamwatch started it. Exit 1 if one is down."""
    parts = stack.stack_status(load_settings())
    _print(parts)
    if not all(p.up for p in parts):
        raise typer.Exit(1)


def _print(parts: list[stack.PartStatus]) -> None:
    table = Table(title="scamwatch local stack")
    for col in ("part", "address", "state", "started by", "pid"):
        table.add_column(col)
    for p in parts:
        state = "[green]up[/]" if p.up else f"[red]down[/] {p.detail}".strip()
        owner = "scamwatch" if p.managed else "external / not running"
        table.add_row(p.name, p.address, state, owner, str(p.pid or ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
