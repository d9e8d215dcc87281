"""``scamwatch stack up|down|status``: the local Kafka and Redis (each one node or a cluster)."""

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
def up(
    brokers: int | None = typer.Option(
        None,
        "--brokers",
        min=1,
        max=9,
        help="Kafka nodes (KRaft, each broker and controller) the first time; "
        "later runs keep the state directory's.",
    ),
    secure: bool = typer.Option(
        False,
        "--secure",
        help="Client listeners ask for SASL/SCRAM-SHA-512, plus a TLS listener (the first time).",
    ),
    redis_nodes: int | None = typer.Option(
        None,
        "--redis-nodes",
        min=1,
        max=9,
        help="1: one Redis; 3 or more: a Redis Cluster of that many masters (the first time).",
    ),
    redis_secure: bool = typer.Option(
        False,
        "--redis-secure",
        help="Redis speaks TLS only and asks for an ACL user's password (the first time).",
    ),
) -> None:
    """Start every Redis and Kafka node that is down, on loopback; wait until all work."""
    parts = stack.stack_up(
        load_settings(),
        _report,
        brokers=brokers,
        secure=secure or None,
        redis_nodes=redis_nodes,
        redis_secure=redis_secure or None,
    )
    _print(parts)


@stack_app.command("down")
def down(
    broker: int | None = typer.Option(
        None, "--broker", min=1, help="Stop Kafka broker I alone (1-based); `up` restarts it."
    ),
    redis_node: int | None = typer.Option(
        None, "--redis-node", min=1, help="Stop Redis node I alone (1-based); `up` restarts it."
    ),
) -> None:
    """Stop what `stack up` started; anything else is left alone."""
    settings = load_settings()
    only: list[str] | None = None
    if broker is not None or redis_node is not None:
        only = [] if broker is None else [stack.kafka_part_name(settings, broker)]
        only += [] if redis_node is None else [stack.redis_part_name(settings, redis_node)]
    stopped = stack.stack_down(settings, _report, only=only)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing'}")


@stack_app.command("status")
def status() -> None:
    """Show each part (every Kafka node), its address, and whether scamwatch started it.
    Exit 1 if one is down."""
    parts = stack.stack_status(load_settings())
    _print(parts)
    if not all(p.up for p in parts):
        raise typer.Exit(1)


def _print(parts: list[stack.PartStatus]) -> None:
    table = Table(title="scamwatch local stack")
    secured = any(p.listeners for p in parts)
    for col in ("part", "address", "state", "started by", "pid", *(["listeners"] * secured)):
        table.add_column(col, overflow="fold")
    for p in parts:
        state = f"[green]up[/] {p.detail}" if p.up else f"[red]down[/] {p.detail}"
        owner = "scamwatch" if p.managed else "external / not running"
        row = [p.name, p.address, state.strip(), owner, str(p.pid or "")]
        table.add_row(*row, *([p.listeners] * secured))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
