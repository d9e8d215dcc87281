"""``scamwatch worker --processes N`` checks every port it will need before starting any
child: a taken one is a setting error naming it, exit code 2."""

from __future__ import annotations

import socket

from tests.unit.cli.test_worker_cli import run_worker


def held_after_a_free_port() -> socket.socket:
    """A listening socket on a port P such that P-1 is free."""
    for _ in range(50):
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", held.getsockname()[1] - 1))
            except OSError:
                held.close()
                continue
        held.listen()
        return held
    raise AssertionError("no free port below a free port")


def test_a_taken_port_of_a_later_child_is_a_setting_error() -> None:
    with held_after_a_free_port() as held:
        taken = held.getsockname()[1]
        # process 0 on taken-1, process 1 on the taken port
        done = run_worker(
            "--processes", "2", "--web-port", str(taken - 1), SCAMWATCH_WEB_BIND="127.0.0.1"
        )
    assert done.returncode == 2, done.stderr
    assert "SCAMWATCH_WEB_PORT" in done.stderr
    assert f"127.0.0.1:{taken}" in done.stderr
    assert "worker process" not in done.stderr  # no child was started


def test_processes_need_a_fixed_web_port() -> None:
    done = run_worker("--processes", "2", "--web-port", "0")
    assert done.returncode == 2, done.stderr
    assert "SCAMWATCH_WEB_PORT" in done.stderr


def test_zero_processes_is_refused() -> None:
    done = run_worker("--processes", "0")
    assert done.returncode == 2
    assert "--processes" in done.stderr
