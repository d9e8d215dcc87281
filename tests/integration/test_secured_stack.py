"""Every command that connects, on the secured local stack, with settings only.

`scamwatch stack up --secure` on ports of its own (Kafka SASL/SCRAM-SHA-512 on 19392, TLS
on 19394; Redis on 16879, given an ACL user with a password here) and its own
SCAMWATCH_STATE_DIR, one for the module, stopped at the end. The worker, `replay`,
`alerts tail`, `indicators`, `scan`, `hunt` and the demo each run as a user runs them,
configured by SCAMWATCH_* variables alone; a wrong password stops each at start with exit 2
and a message naming the setting; and no password appears in anything the run wrote or
printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import redis

from tests.integration.worker_support import Topics, WorkerProcess

pytestmark = pytest.mark.stack

SASL = "127.0.0.1:19392"  # the stack's client listener; TLS and internal ones follow
TLS = "127.0.0.1:19394"
REDIS_PORT = 16879
KAFKA_USER = "alice"
KAFKA_PASSWORD = f"kpw-{uuid.uuid4().hex}"
REDIS_USER = "scamwatch"
REDIS_PASSWORD = f"rpw-{uuid.uuid4().hex}"
COMMAND_TIMEOUT_S = 120  # a command that hangs fails the test instead of the run

SCAM = "+18005550199"
NOW_MS = int(time.time() * 1000)  # indicators are valid from when they are loaded
CALLS = [
    {"event_id": "c1", "ts": NOW_MS, "partner_id": "p1", "caller": "+12025550100", "callee": SCAM},
    {
        "event_id": "c2",
        "ts": NOW_MS + 1,
        "partner_id": "p1",
        "caller": "+12025550101",
        "callee": "+12025550102",
    },
]


@dataclass
class Secured:
    state: Path
    work: Path
    sasl: dict[str, str]  # settings of a client on the SASL/SCRAM listener
    tls: dict[str, str]  # settings of a client on the TLS listener
    outputs: list[str] = field(default_factory=list)  # everything the commands printed

    def run(
        self, *args: str, env: dict[str, str], timeout: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env=_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.outputs.append(f"$ scamwatch {' '.join(args)}\n{done.stdout}\n{done.stderr}")
        return done

    @property
    def store_password(self) -> str:
        return (self.state / "kafka" / "tls" / "store.password").read_text().strip()


def _environment(settings: dict[str, str]) -> dict[str, str]:
    """The test's environment without any SCAMWATCH_* of its own, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
    return env | {"COLUMNS": "200"} | settings


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    state = root / "state"
    common = {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_STATE_DIR": str(state),
    }
    redis_url = f"redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{REDIS_PORT}/0"
    sasl = common | {
        "SCAMWATCH_KAFKA_BOOTSTRAP": SASL,
        "SCAMWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SCAMWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SCAMWATCH_KAFKA_SASL_USERNAME": KAFKA_USER,
        "SCAMWATCH_KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "SCAMWATCH_REDIS_URL": redis_url,
    }
    tls = common | {
        "SCAMWATCH_KAFKA_BOOTSTRAP": TLS,
        "SCAMWATCH_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SCAMWATCH_KAFKA_SSL_CAFILE": str(state / "kafka" / "tls" / "ca.pem"),
        "SCAMWATCH_REDIS_URL": redis_url,
    }
    stack = Secured(state, root, sasl, tls)
    up_env = sasl | {"SCAMWATCH_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0"}
    try:
        up = stack.run("stack", "up", "--secure", env=up_env, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        # the Redis the stack started, given an ACL user with a password and no default user
        admin = redis.Redis(host="127.0.0.1", port=REDIS_PORT)
        admin.execute_command(
            "ACL", "SETUSER", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all"
        )
        admin.execute_command("ACL", "SETUSER", "default", "off")
        admin.close()
        yield stack
    finally:
        pids = [int(p.read_text()) for p in state.glob("*.pid")]
        down = stack.run("stack", "down", env=sasl)
        assert down.returncode == 0, down.stdout + down.stderr
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"pid {pid} still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def _jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_indicators_and_scan_work_with_the_redis_password(secured: Secured) -> None:
    env = secured.sasl | {"SCAMWATCH_REDIS_PREFIX": f"creds-{uuid.uuid4().hex[:8]}:"}
    feed = secured.work / "numbers.txt"
    feed.write_text(f"{SCAM}\n+18005550111\n")
    load = secured.run("indicators", "load", str(feed), "--type", "phone", "--source", "t", env=env)
    assert load.returncode == 0, load.stdout + load.stderr
    add = secured.run("indicators", "add", "domain", "evil-support.example", env=env)
    assert add.returncode == 0, add.stdout + add.stderr
    listed = secured.run("indicators", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert SCAM in listed.stdout and "evil-support.example" in listed.stdout
    stats = secured.run("indicators", "stats", env=env)
    assert stats.returncode == 0, stats.stderr
    assert "phone" in stats.stdout and "domain" in stats.stdout
    scan = secured.run(
        "scan", str(_jsonl(secured.work / "scan.jsonl", CALLS)), "--stream", "calls", env=env
    )
    assert scan.returncode == 0, scan.stderr
    alerts = [orjson.loads(line) for line in scan.stdout.splitlines() if line.strip()]
    assert {(a["event_id"], a["rule"]) for a in alerts} == {("c1", "callee_scam_number")}


def test_worker_replay_and_tail_work_on_the_sasl_and_tls_listeners(
    secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"creds-{uuid.uuid4().hex[:8]}"
    topics = Topics(base)
    prefix = f"{base}:"
    env = secured.sasl | {"SCAMWATCH_REDIS_PREFIX": prefix}
    feed = secured.work / f"{base}.txt"
    feed.write_text(f"{SCAM}\n")
    load = secured.run("indicators", "load", str(feed), "--type", "phone", env=env)
    assert load.returncode == 0, load.stdout + load.stderr
    for name in [k for k in os.environ if k.startswith("SCAMWATCH_")]:
        monkeypatch.delenv(name)  # every setting the worker reads is one of these below
    worker = WorkerProcess(
        topics,
        prefix,
        secured.state / "run",
        # it creates its topics itself (SCAMWATCH_CREATE_TOPICS), through the same settings
        extra_env=env
        | {"SCAMWATCH_TOPIC_SIGHTINGS": f"{base}-sightings", "SCAMWATCH_TOPIC_PARTITIONS": "2"},
    )
    worker.start()
    try:
        worker.wait_assigned(timeout=90)
        topic_env = env | {"SCAMWATCH_TOPIC_CALLS": topics.calls}
        replay = secured.run(
            "replay", str(_jsonl(secured.work / f"{base}.jsonl", CALLS)), "--stream", "calls",
            env=topic_env,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert "sent 2 events" in replay.stderr
        worker.wait_metric(
            lambda m: (
                m.total("scamwatch_events_total", stream="calls", outcome="matched") == 1
                and m.total("scamwatch_events_total", stream="calls", outcome="clean") == 1
            ),
            timeout=60,
        )
        tail = secured.run(
            "alerts", "tail", "--json", "--from-beginning", "--max", "1", "--timeout", "30",
            env=secured.tls | {"SCAMWATCH_TOPIC_ALERTS": topics.alerts},
        )  # fmt: skip
        assert tail.returncode == 0, tail.stderr
        (alert,) = [orjson.loads(line) for line in tail.stdout.splitlines() if line.strip()]
        assert (alert["event_id"], alert["rule"]) == ("c1", "callee_scam_number")
        assert alert["source"]["topic"] == topics.calls
    finally:
        code = worker.stop()
        assert worker.log_path is not None
        secured.outputs.append(worker.log_path.read_text(errors="replace"))
    assert code == 0, worker.log_tail()


def test_hunt_reads_and_writes_through_sasl_and_tls_with_the_redis_password(
    secured: Secured,
) -> None:
    """`scamwatch hunt` on settings alone: the store's indicators (Redis as its ACL user),
    the retained calls read and retro alerts written on the SASL/SCRAM listener, the same
    hunt on the TLS listener to a file."""
    base = f"hunt-{uuid.uuid4().hex[:8]}"
    topics = {"SCAMWATCH_TOPIC_CALLS": f"{base}-calls", "SCAMWATCH_TOPIC_ALERTS": f"{base}-alerts"}
    env = secured.sasl | {"SCAMWATCH_REDIS_PREFIX": f"{base}:"} | topics
    feed = secured.work / f"{base}.txt"
    feed.write_text(f"{SCAM}\n")
    load = secured.run("indicators", "load", str(feed), "--type", "phone", env=env)
    assert load.returncode == 0, load.stdout + load.stderr
    calls = _jsonl(secured.work / f"{base}.jsonl", CALLS)
    replay = secured.run("replay", str(calls), "--stream", "calls", env=env)
    assert replay.returncode == 0, replay.stderr
    assert "sent 2 events" in replay.stderr

    hunt = secured.run("hunt", "--since", "30m", "--stream", "calls", env=env)
    assert hunt.returncode == 0, hunt.stdout + hunt.stderr
    assert f"1 retro alert(s) to {base}-alerts" in hunt.stderr, hunt.stderr
    tail = secured.run(
        "alerts", "tail", "--json", "--from-beginning", "--max", "1", "--timeout", "30",
        env=secured.tls | topics,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    (alert,) = [orjson.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert (alert["event_id"], alert["rule"], alert["retro"]) == ("c1", "callee_scam_number", True)
    assert alert["source"]["topic"] == f"{base}-calls"

    out = secured.work / f"{base}-hunt.jsonl"
    tls_env = secured.tls | {"SCAMWATCH_REDIS_PREFIX": f"{base}:"} | topics
    again = secured.run("hunt", "--since", "30m", "--stream", "calls", "-o", str(out), env=tls_env)
    assert again.returncode == 0, again.stdout + again.stderr
    (line,) = out.read_bytes().splitlines()
    same = orjson.loads(line)
    assert (same["event_id"], same["rule"], same["retro"]) == ("c1", "callee_scam_number", True)
    assert same["alert_id"] == alert["alert_id"]  # one event, one indicator, one rule: one id


def test_the_demo_runs_on_the_tls_listener(secured: Secured) -> None:
    demo = secured.run(
        "demo", "--quiet", "--calls", "40", "--web", "40", "--rate", "400", env=secured.tls
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "precision" in demo.stdout
    assert "left running (it was up before the demo)" in demo.stdout


WRONG = "not-the-password"


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "--web-port", "0", "--metrics-port", "0"],
        ["replay", "{calls}", "--stream", "calls"],
        ["alerts", "tail", "--timeout", "5"],
        ["demo", "--quiet", "--calls", "20", "--web", "20"],
        ["hunt", "--since", "10m"],
    ],
    ids=["worker", "replay", "alerts-tail", "demo", "hunt"],
)
def test_a_wrong_kafka_password_fails_at_start_naming_the_setting(
    secured: Secured, command: list[str]
) -> None:
    args = [a.replace("{calls}", str(_jsonl(secured.work / "wrong.jsonl", CALLS))) for a in command]
    # a bounded wait, not a hang: the command is killed (TimeoutExpired fails the test)
    done = secured.run(
        *args, env=secured.sasl | {"SCAMWATCH_KAFKA_SASL_PASSWORD": WRONG}, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: SCAMWATCH_KAFKA_SASL_PASSWORD:" in done.stderr
    assert f"user {KAFKA_USER!r}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert WRONG not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["indicators", "stats"],
        ["scan", "{calls}", "--stream", "calls"],
        ["worker", "--web-port", "0", "--metrics-port", "0"],
        ["hunt", "--since", "10m"],
    ],
    ids=["indicators", "scan", "worker", "hunt"],
)
def test_a_wrong_redis_password_fails_at_start_naming_the_setting(
    secured: Secured, command: list[str]
) -> None:
    args = [a.replace("{calls}", str(_jsonl(secured.work / "wrong.jsonl", CALLS))) for a in command]
    wrong = f"redis://{REDIS_USER}:{WRONG}@127.0.0.1:{REDIS_PORT}/0"
    # a bounded wait, not a retry loop: the command is killed (TimeoutExpired fails the test)
    done = secured.run(*args, env=secured.sasl | {"SCAMWATCH_REDIS_URL": wrong}, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SCAMWATCH_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert WRONG not in done.stdout + done.stderr


def test_tls_without_the_ca_fails_at_start_naming_the_setting(secured: Secured) -> None:
    no_ca = {k: v for k, v in secured.tls.items() if k != "SCAMWATCH_KAFKA_SSL_CAFILE"}
    done = secured.run("alerts", "tail", "--timeout", "5", env=no_ca)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: SCAMWATCH_KAFKA_SSL_CAFILE:" in done.stderr
    assert "not trusted" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_secret_in_any_log_output_or_status(secured: Secured) -> None:
    """Runs last: greps everything the module's commands printed and every file the stack,
    the workers and Faust wrote under the state directory."""
    status = secured.run("stack", "status", env=secured.sasl)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "SASL_PLAINTEXT" in status.stdout
    logs = [  # every log file; the broker's data segments are *.log too, and hold no log
        p
        for p in secured.state.rglob("*")
        if p.suffix in (".log", ".txt") and "data" not in p.parts and p.is_file()
    ]
    assert len(logs) >= 3  # the broker's server.log and stdout.log, redis.log, worker logs
    assert any("worker-" in p.name for p in logs)
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts |= {f"output {i}": out for i, out in enumerate(secured.outputs)}
    assert any("Authenticated as alice via SCRAM-SHA-512" in t for t in texts.values())
    assert any(out.startswith("$ scamwatch hunt") for out in secured.outputs)  # grepped too
    secrets_ = {
        "Kafka SASL password": KAFKA_PASSWORD,
        "Redis password": REDIS_PASSWORD,
        "keystore password": secured.store_password,
    }
    for what, secret in secrets_.items():
        leaked = [where for where, text in texts.items() if secret in text]
        assert not leaked, f"the {what} appears in {leaked}"
