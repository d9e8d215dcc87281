"""``scamwatch worker`` refuses a bad setting with one line naming it, and exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCAMWATCH = str(Path(sys.executable).with_name("scamwatch"))


def run_worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCAMWATCH, "worker", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        ((), {"SCAMWATCH_METRICS_PORT": "not-a-port"}, "SCAMWATCH_METRICS_PORT"),
        (("--metrics-port", "70000"), {}, "SCAMWATCH_METRICS_PORT"),
        ((), {"SCAMWATCH_KAFKA_BOOTSTRAP": "nohostport"}, "SCAMWATCH_KAFKA_BOOTSTRAP"),
        ((), {"SCAMWATCH_INDICATOR_POLL_SECONDS": "0"}, "SCAMWATCH_INDICATOR_POLL_SECONDS"),
        ((), {"SCAMWATCH_REDIS_URL": "http://nope"}, "SCAMWATCH_REDIS_URL"),
    ],
)
def test_bad_setting_exits_2_naming_it(
    args: tuple[str, ...], env: dict[str, str], setting: str
) -> None:
    done = run_worker(*args, **env)
    assert done.returncode == 2, done.stderr
    assert setting in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_port_in_use_is_a_setting_error() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_worker("--metrics-port", str(port), SCAMWATCH_METRICS_BIND="127.0.0.1")
    assert done.returncode == 2, done.stderr
    assert "SCAMWATCH_METRICS_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_redis_password_never_reaches_the_log() -> None:
    # a worker whose web port is taken stops right after logging its settings
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_worker(
            "--web-port",
            str(port),
            SCAMWATCH_WEB_BIND="127.0.0.1",
            SCAMWATCH_REDIS_URL="redis://user:hunter2secret@127.0.0.1:1/0",
            SCAMWATCH_KAFKA_SASL_PASSWORD="kafka-s3cret",
        )
    assert done.returncode == 2
    assert "SCAMWATCH_WEB_PORT" in done.stderr
    assert "settings" in done.stderr  # the redacted settings were logged ...
    assert "hunter2secret" not in done.stderr + done.stdout  # ... without the secrets
    assert "kafka-s3cret" not in done.stderr + done.stdout
