"""The local single-node stack: Apache Kafka (KRaft, from Maven Central jars) and Redis.

``stack_up`` is idempotent: a part that already answers at its configured address is left
alone (and reported as external); a part it starts is recorded in a pid file so that
``stack_down`` stops only what ``stack_up`` started. Everything listens on loopback.

State layout (``SCAMWATCH_STATE_DIR``, default ``~/.local/state/scamwatch``)::

    kafka/server.properties  kafka/log4j2.properties  kafka/cluster.id
    kafka/data/              kafka/server.log  kafka/stdout.log  kafka.pid
    redis/                   redis/redis.log   redis.pid

The Kafka jars are fetched once by Maven into ``SCAMWATCH_CACHE_DIR`` (default
``~/.cache/scamwatch``) ``/kafka-<version>/libs`` and reused by every checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from engine.errors import StackError
from engine.settings import Settings

KAFKA_VERSION = "4.1.1"  # keep in step with deploy/kafka/pom.xml
KAFKA_HEAP = "-Xms256m -Xmx512m"
POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
READY_TIMEOUT_S = 90.0

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PartStatus:
    name: str
    address: str
    up: bool
    managed: bool  # started by `scamwatch stack up` (we hold its pid)
    pid: int | None = None
    detail: str = ""


def state_dir(settings: Settings) -> Path:
    return Path(settings.stack.state_dir).expanduser().resolve()


def cache_dir(settings: Settings) -> Path:
    return Path(settings.stack.cache_dir).expanduser().resolve()


def kafka_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.kafka.bootstrap.split(",")[0].rpartition(":")
    return host.strip("[]"), int(port)


def redis_address(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.redis.url.get_secret_value())
    return parts.hostname or "127.0.0.1", parts.port or 6379


# ---------------------------------------------------------------------------------- probes


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(settings: Settings) -> bool:
    client = redis.Redis.from_url(
        settings.redis.url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


async def _kafka_round_trip(bootstrap: str, wait_s: float) -> None:
    """Create a topic, produce one record and consume it back: the broker really works."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "__scamwatch_ready"
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await producer.start()
    try:
        meta = await asyncio.wait_for(producer.send_and_wait(topic, token), wait_s)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if any(rec.value == token for rec in batch.get(tp, [])):
                return
        raise TimeoutError("produced a record but could not consume it back")
    finally:
        await consumer.stop()


def kafka_ready(settings: Settings, timeout: float = 15.0) -> bool:
    host, port = kafka_address(settings)
    if not port_open(host, port):
        return False
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # "topic not found yet" warnings are expected while waiting
    try:
        asyncio.run(asyncio.wait_for(_kafka_round_trip(settings.kafka.bootstrap, timeout), timeout))
    except Exception:  # any failure means "not ready yet"; the caller reports the log tail
        return False
    finally:
        quiet.setLevel(level)
    return True


# ------------------------------------------------------------------------------- processes


def _pid_file(settings: Settings, name: str) -> Path:
    return state_dir(settings) / f"{name}.pid"


def _read_pid(settings: Settings, name: str) -> int | None:
    """The pid of a part we started, if that process is still alive."""
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return None
    # a recycled pid is not ours: check the command line names what we started
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return pid
    marker = b"kafka.Kafka" if name == "kafka" else b"redis-server"
    if marker not in cmdline:
        path.unlink(missing_ok=True)
        return None
    return pid


def _spawn(cmd: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(  # detached: outlives the CLI, stopped by `stack down`
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the part's process group (we start each in a session of its own), or the
    process alone when it leads no group."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    _signal(pid, signal.SIGKILL)
    for _ in range(50):
        if not _alive(pid):
            return
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        # reap it if it is our child (it is not, when started by an earlier CLI run)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().split(") ", 1)[1].startswith("Z"):
            return False  # a zombie has stopped already
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# ----------------------------------------------------------------------------------- redis


def _redis_server_binary(report: Report) -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError(
            "redis-server is not installed; install it with `apt-get install redis-server`"
        )
    report("installing redis-server from Debian's packages (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")
    found = shutil.which("redis-server")
    if not found:
        raise StackError("apt-get installed redis-server but it is not on PATH")
    return found


def redis_up(settings: Settings, report: Report) -> PartStatus:
    host, port = redis_address(settings)
    address = f"{host}:{port}"
    if redis_ping(settings):
        pid = _read_pid(settings, "redis")
        report(f"Redis already up at {address}")
        return PartStatus("redis", address, True, pid is not None, pid)
    if host not in LOOPBACK:
        raise StackError(
            f"SCAMWATCH_REDIS_URL points at {address}, which does not answer; "
            "the local stack only starts Redis on loopback"
        )
    if port_open(host, port):
        raise StackError(f"{address} is taken by something that does not answer Redis PING")
    binary = _redis_server_binary(report)
    workdir = state_dir(settings) / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    cmd = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    pid = _spawn(cmd, cwd=workdir, log=log)
    _pid_file(settings, "redis").write_text(str(pid))
    report(f"starting Redis on {address} (pid {pid}) ...")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if redis_ping(settings):
            report(f"Redis up at {address}")
            return PartStatus("redis", address, True, True, pid)
        if not _alive(pid):
            break
        time.sleep(0.2)
    raise StackError(f"Redis did not answer PING at {address}; its log:\n{_tail(log)}")


# ----------------------------------------------------------------------------------- kafka


def kafka_libs(settings: Settings, report: Report) -> Path:
    """The broker's jars, fetched by Maven from Maven Central the first time only."""
    libs = cache_dir(settings) / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    if not POM.exists():
        raise StackError(f"cannot find {POM}: run the stack from a scamwatch source checkout")
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven (`mvn`) is not installed; it fetches the Kafka jars")
    libs.mkdir(parents=True, exist_ok=True)
    report(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (once) ...")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        f"-Dkafka.version={KAFKA_VERSION}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(
            f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"Maven finished but {libs} holds no kafka_2.13 jar")
    marker.write_text(KAFKA_VERSION)
    return libs


def _kafka_config(settings: Settings, kdir: Path) -> Path:
    host, port = kafka_address(settings)
    bind = "127.0.0.1" if host in ("localhost", "127.0.0.1") else host
    controller = port + 1
    props = kdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "# written by `scamwatch stack up`: single-node KRaft, loopback only",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{bind}:{controller}",
                f"listeners=PLAINTEXT://{bind}:{port},CONTROLLER://{bind}:{controller}",
                f"advertised.listeners=PLAINTEXT://{bind}:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={kdir / 'data'}",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=24",
                "log.segment.bytes=67108864",
                "",
            ]
        )
    )
    (kdir / "log4j2.properties").write_text(
        "\n".join(
            [
                "status = warn",
                "appender.file.type = File",
                "appender.file.name = file",
                f"appender.file.fileName = {kdir / 'server.log'}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = file",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "",
            ]
        )
    )
    return props


def kafka_up(settings: Settings, report: Report) -> PartStatus:
    host, port = kafka_address(settings)
    address = f"{host}:{port}"
    pid = _read_pid(settings, "kafka")
    if port_open(host, port):
        if kafka_ready(settings):
            report(f"Kafka already up at {address}")
            return PartStatus("kafka", address, True, pid is not None, pid)
        if pid is None:
            raise StackError(f"{address} is taken by something that is not a working broker")
    elif host not in LOOPBACK:
        raise StackError(
            f"SCAMWATCH_KAFKA_BOOTSTRAP points at {address}, which does not answer; "
            "the local stack only starts Kafka on loopback"
        )
    kdir = state_dir(settings) / "kafka"
    log = kdir / "server.log"
    if pid is None:
        java = shutil.which("java")
        if not java:
            raise StackError("Java (`java`, 17 or newer) is not installed; Kafka needs it")
        libs = kafka_libs(settings, report)
        (kdir / "data").mkdir(parents=True, exist_ok=True)
        props = _kafka_config(settings, kdir)
        classpath = f"{libs}/*"
        id_file = kdir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_random_cluster_id())
        fmt = [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            id_file.read_text().strip(),
            "-c",
            str(props),
            "--ignore-formatted",
        ]
        done = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
        env = {**os.environ, "KAFKA_HEAP_OPTS": KAFKA_HEAP}
        cmd = [
            java,
            *KAFKA_HEAP.split(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kdir / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        pid = _spawn(cmd, cwd=kdir, log=kdir / "stdout.log", env=env)
        _pid_file(settings, "kafka").write_text(str(pid))
        report(f"starting Kafka {KAFKA_VERSION} on {address} (pid {pid}) ...")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            _pid_file(settings, "kafka").unlink(missing_ok=True)
            raise StackError(
                f"Kafka exited during start; the end of {log}:\n{_tail(log)}\n"
                f"{_tail(kdir / 'stdout.log', 10)}"
            )
        if kafka_ready(settings, timeout=10):
            report(f"Kafka up at {address} (produce/consume round trip OK)")
            return PartStatus("kafka", address, True, True, pid)
        time.sleep(1)
    raise StackError(
        f"Kafka did not become ready at {address} in {READY_TIMEOUT_S:.0f} s; "
        f"the end of {log}:\n{_tail(log)}"
    )


def _random_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# ---------------------------------------------------------------------------------- facade


@contextlib.contextmanager
def _stack_lock(settings: Settings) -> Iterator[None]:
    """One `stack up`/`down` at a time per state directory: two concurrent runs would both
    start a broker on the same data directory and orphan one of them."""
    directory = state_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "stack.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stack_up(settings: Settings, report: Report = print) -> list[PartStatus]:
    with _stack_lock(settings):
        return [redis_up(settings, report), kafka_up(settings, report)]


def stack_down(
    settings: Settings, report: Report = print, *, only: Iterable[str] | None = None
) -> list[str]:
    """Stop what `stack up` started (and only that), or only the parts named in ``only``;
    returns the names stopped."""
    wanted = set(only) if only is not None else {"kafka", "redis"}
    stopped: list[str] = []
    with _stack_lock(settings):
        for name in ("kafka", "redis"):
            if name not in wanted:
                continue
            pid = _read_pid(settings, name)
            if pid is None:
                report(f"{name}: not started by scamwatch, left alone")
                continue
            report(f"stopping {name} (pid {pid}) ...")
            _stop_pid(pid)
            _pid_file(settings, name).unlink(missing_ok=True)
            stopped.append(name)
    return stopped


def stack_status(settings: Settings) -> list[PartStatus]:
    rhost, rport = redis_address(settings)
    khost, kport = kafka_address(settings)
    rpid = _read_pid(settings, "redis")
    kpid = _read_pid(settings, "kafka")
    kafka_open = port_open(khost, kport)
    return [
        PartStatus("redis", f"{rhost}:{rport}", redis_ping(settings), rpid is not None, rpid),
        PartStatus(
            "kafka",
            f"{khost}:{kport}",
            kafka_open and kafka_ready(settings, timeout=10),
            kpid is not None,
            kpid,
            detail="" if kafka_open else "port closed",
        ),
    ]
