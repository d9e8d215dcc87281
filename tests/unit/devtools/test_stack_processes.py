"""`stack down` stops only what `stack up` recorded, and only the parts it is asked to;
a pid file whose process is gone, or is some other program, is not ours."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.devtools import stack
from engine.settings import Settings, load_settings

SLEEPER = "import sys, time; time.sleep(120)"


def _wait_exec(pid: int, marker: str) -> None:
    """Until the child has exec'd, its command line is still pytest's."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    for _ in range(200):
        if marker.encode() in cmdline.read_bytes():
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never showed {marker!r} in its command line")


@pytest.fixture
def state(tmp_path: Path) -> Settings:
    return load_settings(stack={"state_dir": str(tmp_path)})


@pytest.fixture
def fake_parts(state: Settings) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Two harmless processes whose command lines look like our broker and Redis."""
    procs = {
        "kafka": subprocess.Popen([sys.executable, "-c", SLEEPER, "kafka.Kafka"]),
        "redis": subprocess.Popen([sys.executable, "-c", SLEEPER, "redis-server"]),
    }
    for name, proc in procs.items():
        _wait_exec(proc.pid, "kafka.Kafka" if name == "kafka" else "redis-server")
        (Path(state.stack.state_dir) / f"{name}.pid").write_text(str(proc.pid))
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def test_down_only_stops_the_parts_named(
    state: Settings, fake_parts: dict[str, subprocess.Popen[bytes]]
) -> None:
    stopped = stack.stack_down(state, report=lambda _: None, only=["redis"])
    assert stopped == ["redis"]
    assert fake_parts["redis"].wait(timeout=10) is not None
    assert fake_parts["kafka"].poll() is None
    assert (Path(state.stack.state_dir) / "kafka.pid").exists()
    assert not (Path(state.stack.state_dir) / "redis.pid").exists()


def test_down_stops_everything_it_started(
    state: Settings, fake_parts: dict[str, subprocess.Popen[bytes]]
) -> None:
    assert stack.stack_down(state, report=lambda _: None) == ["kafka", "redis"]
    for proc in fake_parts.values():
        assert proc.wait(timeout=10) is not None


def test_a_recycled_pid_is_not_ours(state: Settings) -> None:
    other = subprocess.Popen([sys.executable, "-c", SLEEPER, "something-else"])
    try:
        _wait_exec(other.pid, "something-else")
        (Path(state.stack.state_dir) / "kafka.pid").write_text(str(other.pid))
        messages: list[str] = []
        assert stack.stack_down(state, report=messages.append) == []
        assert other.poll() is None
        assert any("kafka: not started by scamwatch" in m for m in messages)
    finally:
        other.kill()
        other.wait()
