"""A `scamwatch stack` of a test's own: its own SCAMWATCH_STATE_DIR and ports, started and
stopped through the real command line, with everything it printed kept for secret checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class OwnStack:
    env: dict[str, str]
    state: Path
    output: list[str] = field(default_factory=list)  # every command's stdout + stderr

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``scamwatch ARGS`` with this stack's settings (``env`` added on top)."""
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.output.append(done.stdout + done.stderr)
        return done

    def stack(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("stack", *args)

    def pid(self, part: str) -> int:
        return int((self.state / f"{part}.pid").read_text())


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


@contextmanager
def own_stack(state: Path, settings: dict[str, str], *up_args: str) -> Iterator[OwnStack]:
    """``stack up UP_ARGS`` with ``settings`` (SCAMWATCH_* variables) and nothing else of the
    caller's SCAMWATCH_* environment; ``stack down`` at the end, which must stop every
    process it started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
    env |= {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_STATE_DIR": str(state),
        "COLUMNS": "200",
        **settings,
    }
    stack = OwnStack(env, state)
    try:
        up = stack.stack("up", *up_args)
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack
    finally:
        pids = [int(p.read_text()) for p in state.glob("*.pid")]
        down = stack.stack("down")
        assert down.returncode == 0, down.stdout + down.stderr
        for pid in pids:
            assert not running(pid), f"pid {pid} still running after `stack down`"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_redis_cluster_port(nodes: int) -> int:
    """A first client port for a Redis Cluster of ``nodes`` masters of a test's own: it, the
    next ports and their cluster bus ports (+10000) free, all below the kernel's ephemeral
    range (32768) and below test_faults.py's ports (21000..)."""
    bases = range(12_000, 16_000, 10)
    start = os.getpid() % len(bases)  # concurrent runs of other checkouts start elsewhere
    for base in [*bases[start:], *bases[:start]]:
        if all(_free(p) and _free(p + 10_000) for p in range(base, base + nodes)):
            return base
    raise AssertionError(f"no {nodes} consecutive free ports (and bus ports) in 12000..16000")
