"""The local stack: Apache Kafka (KRaft, from Maven Central jars) and Redis, on loopback.

``stack_up`` is idempotent: a part that already answers at its configured address is left
alone (and reported as external); a part it starts is recorded in a pid file so that
``stack_down`` stops only what ``stack_up`` started, and a later ``stack_up`` starts again
whatever of it is down. Kafka is one node, or a cluster of N KRaft nodes (each broker and
controller, an N-voter quorum); either may be secured (SASL/SCRAM and TLS listeners).

State layout (``SCAMWATCH_STATE_DIR``, default ``~/.local/state/scamwatch``)::

    kafka/server.properties  kafka/log4j2.properties  kafka/cluster.id  kafka/stack.json
    kafka/data/              kafka/server.log  kafka/stdout.log  kafka.pid
    kafka/broker-<i>/...     kafka-<i>.pid         (a cluster: one directory per node)
    kafka/tls/  kafka/client-sasl.env  kafka/client-ssl.env      (secured only)
    redis/                   redis/redis.log   redis.pid

The Kafka jars are fetched once by Maven into ``SCAMWATCH_CACHE_DIR`` (default
``~/.cache/scamwatch``) ``/kafka-<version>/libs`` and reused by every checkout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shlex
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
POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
READY_TIMEOUT_S = 90.0
LAYOUT_FILE = "stack.json"  # under kafka/: how many brokers, secured or not
STORE_PASSWORD = "store.password"  # under kafka/tls/, mode 0600
SCRAM_MECHANISM = "SCRAM-SHA-512"

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PartStatus:
    name: str
    address: str
    up: bool
    managed: bool  # started by `scamwatch stack up` (we hold its pid)
    pid: int | None = None
    detail: str = ""
    listeners: str = ""  # Kafka: every listener of the node, with its protocol


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
    """Produce one record (acks=all, to a topic replicated as the brokers' default) and
    consume it back: the broker, and in a cluster its replication, really works."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "__scamwatch_ready"
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000, acks="all")
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
    marker = b"kafka.Kafka" if name.startswith("kafka") else b"redis-server"
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


def _stop_pids(pids: Iterable[int], timeout: float = 30.0) -> None:
    """SIGTERM them all at once (the nodes of a cluster shut down together, not each one
    waiting on a quorum the others have already left), SIGKILL what outlives ``timeout``."""
    waiting = list(pids)
    for pid in waiting:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if _alive(pid)]
        time.sleep(0.2)
    for pid in waiting:
        _signal(pid, signal.SIGKILL)
    for _ in range(50):
        if not any(_alive(pid) for pid in waiting):
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


def new_cluster_id() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid`` makes one: a random (type 4) UUID in
    unpadded base64url, never one whose text begins with ``-`` (command lines misread it)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One KRaft node (broker and controller in one process) and the ports it listens on."""

    node_id: int
    name: str  # the part's name: "kafka" alone, "kafka-<id>" in a cluster
    host: str
    port: int  # the client listener, the address SCAMWATCH_KAFKA_BOOTSTRAP names
    controller_port: int
    directory: Path
    ssl_port: int | None = None  # secure only
    internal_port: int | None = None  # secure only: plaintext, brokers and the stack's probe

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def probe_address(self) -> str:
        """Where the stack checks the node works: a listener that needs no credentials."""
        return f"{self.host}:{self.internal_port or self.port}"

    def listeners(self) -> str:
        """The secured node's listeners by protocol (a plain node has only its address)."""
        if self.ssl_port is None:
            return ""
        return f"SASL_PLAINTEXT :{self.port}, SSL :{self.ssl_port}, internal :{self.internal_port}"


@dataclass(frozen=True, slots=True)
class KafkaLayout:
    """The Kafka part of a state directory: how many nodes, secured or not, and where."""

    root: Path
    brokers: int
    secure: bool
    nodes: tuple[KafkaNode, ...]

    @property
    def replication(self) -> int:
        return min(self.brokers, 3)

    @property
    def min_insync(self) -> int:
        return max(1, self.replication - 1)

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def sasl_env(self) -> Path:
        """Client settings for the SASL/SCRAM listener, password included (mode 0600)."""
        return self.root / "client-sasl.env"

    @property
    def ssl_env(self) -> Path:
        return self.root / "client-ssl.env"

    def node(self, node_id: int) -> KafkaNode:
        if not 1 <= node_id <= self.brokers:
            raise StackError(
                f"there is no broker {node_id}: the stack in {self.root.parent} has "
                f"{self.brokers} (1..{self.brokers})"
            )
        return self.nodes[node_id - 1]


def _recorded_layout(root: Path) -> tuple[int, bool] | None:
    """What the state directory was created with; an older single-node one has no file."""
    try:
        saved = json.loads((root / LAYOUT_FILE).read_text())
        return int(saved["brokers"]), bool(saved["secure"])
    except FileNotFoundError:
        return (1, False) if (root / "data").exists() else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"cannot read {root / LAYOUT_FILE}: {exc}") from exc


def kafka_layout(
    settings: Settings, brokers: int | None = None, secure: bool | None = None
) -> KafkaLayout:
    """The nodes for these settings. Brokers listen on consecutive ports from the first
    bootstrap address (or on the addresses it lists, one per broker); the ports after the
    highest broker port go to the controllers, then (secure) the SSL and internal ones."""
    root = state_dir(settings) / "kafka"
    servers = [_split_address(s) for s in settings.kafka.bootstrap.split(",")]
    recorded = _recorded_layout(root)
    if brokers is None:
        brokers = recorded[0] if recorded else len(servers)
    if recorded and (brokers != recorded[0] or (secure and not recorded[1])):
        raise StackError(
            f"{root} holds a {recorded[0]}-broker{' secured' if recorded[1] else ''} stack; "
            "stop it (`scamwatch stack down`) and remove that directory, or give "
            "SCAMWATCH_STATE_DIR another directory"
        )
    secure = recorded[1] if recorded else bool(secure)
    if len(servers) == 1 or brokers == 1:  # one node: the first address, as it always was
        host, first = servers[0]
        servers = [(host, first + i) for i in range(brokers)]
    elif len(servers) != brokers:
        raise StackError(
            f"SCAMWATCH_KAFKA_BOOTSTRAP lists {len(servers)} addresses for {brokers} brokers: "
            "list one per broker, or only the first (the others take the next ports)"
        )
    top = max(port for _, port in servers)
    nodes = []
    for i, (host, port) in enumerate(servers, start=1):
        nodes.append(
            KafkaNode(
                node_id=i,
                name="kafka" if brokers == 1 else f"kafka-{i}",
                host=host,
                port=port,
                controller_port=top + i,
                directory=root if brokers == 1 else root / f"broker-{i}",
                ssl_port=top + brokers + i if secure else None,
                internal_port=top + 2 * brokers + i if secure else None,
            )
        )
    return KafkaLayout(root, brokers, secure, tuple(nodes))


def _split_address(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def _bind(host: str) -> str:
    return "127.0.0.1" if host in ("localhost", "127.0.0.1") else host


def _kafka_config(layout: KafkaLayout, node: KafkaNode) -> Path:
    bind = _bind(node.host)
    voters = ",".join(f"{n.node_id}@{_bind(n.host)}:{n.controller_port}" for n in layout.nodes)
    controller = f"CONTROLLER://{bind}:{node.controller_port}"
    if node.ssl_port is None:
        listeners = [
            f"listeners=PLAINTEXT://{bind}:{node.port},{controller}",
            f"advertised.listeners=PLAINTEXT://{bind}:{node.port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    else:
        tls = layout.tls_dir
        password = (tls / STORE_PASSWORD).read_text().strip()
        sasl, ssl_, internal = (
            f"SASL_PLAINTEXT://{bind}:{node.port}",
            f"SSL://{bind}:{node.ssl_port}",
            f"INTERNAL://{bind}:{node.internal_port}",
        )
        listeners = [
            f"listeners={sasl},{ssl_},{internal},{controller}",
            f"advertised.listeners={sasl},{ssl_},{internal}",
            "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
            "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
            f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={tls / 'broker.p12'}",
            f"ssl.keystore.password={password}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={tls / 'truststore.p12'}",
            f"ssl.truststore.password={password}",
            "ssl.client.auth=none",
        ]
    rf, isr = layout.replication, layout.min_insync
    props = node.directory / "server.properties"
    props.touch(mode=0o600)  # it holds the keystore password when secured
    props.write_text(
        "\n".join(
            [
                "# written by `scamwatch stack up`: KRaft combined mode, loopback only",
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                *listeners,
                "controller.listener.names=CONTROLLER",
                f"log.dirs={node.directory / 'data'}",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                f"default.replication.factor={rf}",
                f"min.insync.replicas={isr}",
                f"offsets.topic.replication.factor={rf}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={rf}",
                f"transaction.state.log.min.isr={isr}",
                f"share.coordinator.state.topic.replication.factor={rf}",
                f"share.coordinator.state.topic.min.isr={isr}",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=24",
                "log.segment.bytes=67108864",
                "",
            ]
        )
    )
    (node.directory / "log4j2.properties").write_text(
        "\n".join(
            [
                "status = warn",
                "appender.file.type = File",
                "appender.file.name = file",
                f"appender.file.fileName = {node.directory / 'server.log'}",
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


def format_command(
    java: str, classpath: str, cluster_id: str, props: Path, scram: str | None = None
) -> list[str]:
    """``kafka-storage format``. The id goes as ``--cluster-id=ID``: an id that begins with
    ``-`` (Kafka's own tool made such ids before 3.x) would otherwise read as an option."""
    cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
    cmd += [f"--cluster-id={cluster_id}", "-c", str(props), "--ignore-formatted"]
    if scram:
        cmd += ["--add-scram", scram]
    return cmd


# ------------------------------------------------------------------ kafka: secured variant


def _write_secret(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _run_tool(cmd: list[str], what: str, cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"{what} failed (`{cmd[0]}` exit {done.returncode}):\n{done.stderr}")


def _make_tls(layout: KafkaLayout, report: Report) -> None:
    """A local CA (PEM, for clients) and the brokers' PKCS12 keystore and truststore,
    made once with openssl and keytool; the store password is random, kept 0600."""
    tls = layout.tls_dir
    if (tls / "truststore.p12").exists():
        return
    for tool in ("openssl", "keytool"):
        if not shutil.which(tool):
            raise StackError(f"`{tool}` is not installed; the secured stack makes certificates")
    tls.mkdir(parents=True, exist_ok=True)
    tls.chmod(0o700)
    report(f"making a local CA and broker certificates in {tls} ...")
    _write_secret(tls / STORE_PASSWORD, secrets.token_urlsafe(24))
    sans = sorted({_bind(n.host) for n in layout.nodes} | {"127.0.0.1"})
    alt = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in sans) + ",DNS:localhost"
    (tls / "broker.ext").write_text(
        f"subjectAltName={alt}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    password_file = shlex.quote(str(tls / STORE_PASSWORD))
    steps = {
        "making the CA": "openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650"
        " -keyout ca.key -out ca.pem -subj '/CN=scamwatch local stack CA'"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        "making the broker key": "openssl req -newkey rsa:2048 -nodes -sha256"
        " -keyout broker.key -out broker.csr -subj /CN=127.0.0.1",
        "signing the broker certificate": "openssl x509 -req -in broker.csr -CA ca.pem"
        " -CAkey ca.key -CAcreateserial -out broker.pem -days 825 -sha256 -extfile broker.ext",
        "writing the PKCS12 keystore": "openssl pkcs12 -export -in broker.pem -inkey broker.key"
        f" -certfile ca.pem -name broker -out broker.p12 -passout file:{password_file}",
        "writing the PKCS12 truststore": "keytool -importcert -noprompt -alias scamwatch-ca"
        f" -file ca.pem -keystore truststore.p12 -storetype PKCS12 -storepass:file {password_file}",
    }
    for what, cmd in steps.items():
        _run_tool(shlex.split(cmd), what, tls)
    for key in ("ca.key", "broker.key"):
        (tls / key).chmod(0o600)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _scram_user(settings: Settings, layout: KafkaLayout, report: Report) -> str:
    """The SCRAM user the brokers are formatted with, as ``--add-scram`` wants it: the one
    SCAMWATCH_KAFKA_SASL_USERNAME/PASSWORD name, else ``scamwatch`` with a random password.
    Client settings (password included) go to a 0600 file, never to the terminal."""
    given = settings.kafka.sasl_password
    if layout.sasl_env.exists():  # made with the stack: the brokers hold this user already
        saved = dict(
            line.split("=", 1) for line in layout.sasl_env.read_text().splitlines() if "=" in line
        )
        username = saved["SCAMWATCH_KAFKA_SASL_USERNAME"]
        password = saved["SCAMWATCH_KAFKA_SASL_PASSWORD"]
        if given and given.get_secret_value() != password:
            report(
                "SCAMWATCH_KAFKA_SASL_PASSWORD differs from the password this stack was made "
                f"with; the brokers keep theirs (see {layout.sasl_env})"
            )
        return f"{SCRAM_MECHANISM}=[name={username},password={password}]"
    username = settings.kafka.sasl_username or "scamwatch"
    password = given.get_secret_value() if given else secrets.token_urlsafe(24)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", username) or not re.fullmatch(r"[^\s,\]]+", password):
        raise StackError(
            "SCAMWATCH_KAFKA_SASL_USERNAME must be letters, digits, '.', '_', '-' and "
            "SCAMWATCH_KAFKA_SASL_PASSWORD must hold no space, ',' or ']' for the local stack"
        )
    sasl = ",".join(n.address for n in layout.nodes)
    ssl_ = ",".join(f"{n.host}:{n.ssl_port}" for n in layout.nodes)
    _write_secret(
        layout.sasl_env,
        "# written by `scamwatch stack up --secure`: the SASL/SCRAM listener\n"
        f"SCAMWATCH_KAFKA_BOOTSTRAP={sasl}\n"
        "SCAMWATCH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n"
        f"SCAMWATCH_KAFKA_SASL_MECHANISM={SCRAM_MECHANISM}\n"
        f"SCAMWATCH_KAFKA_SASL_USERNAME={username}\n"
        f"SCAMWATCH_KAFKA_SASL_PASSWORD={password}\n",
    )
    layout.ssl_env.write_text(
        "# written by `scamwatch stack up --secure`: the TLS listener\n"
        f"SCAMWATCH_KAFKA_BOOTSTRAP={ssl_}\n"
        "SCAMWATCH_KAFKA_SECURITY_PROTOCOL=SSL\n"
        f"SCAMWATCH_KAFKA_SSL_CAFILE={layout.tls_dir / 'ca.pem'}\n"
    )
    report(
        f"SASL/SCRAM user {username!r} ({'from settings' if given else 'random password'}); "
        f"client settings in {layout.sasl_env} (mode 0600) and {layout.ssl_env}"
    )
    return f"{SCRAM_MECHANISM}=[name={username},password={password}]"


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "**********") if secret else text


# ------------------------------------------------------------------- kafka: start and wait


def kafka_node_ready(node: KafkaNode, timeout: float = 15.0) -> bool:
    """A produce (acks=all) and consume round trip through this node."""
    if not port_open(node.host, node.internal_port or node.port):
        return False
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # "topic not found yet" warnings are expected while waiting
    try:
        asyncio.run(asyncio.wait_for(_kafka_round_trip(node.probe_address, timeout), timeout))
    except Exception:  # any failure means "not ready yet"; the caller reports the log tail
        return False
    finally:
        quiet.setLevel(level)
    return True


def kafka_ready(settings: Settings, timeout: float = 15.0) -> bool:
    """The first node of the configured stack works (see ``kafka_node_ready``)."""
    return kafka_node_ready(kafka_layout(settings).nodes[0], timeout)


def _start_node(
    layout: KafkaLayout,
    node: KafkaNode,
    *,
    java: str,
    classpath: str,
    cluster_id: str,
    scram: str | None,
) -> subprocess.Popen[str] | None:
    """Write the node's config and begin formatting its storage (a JVM of its own, so the
    nodes of a cluster format in parallel); None when it is formatted already."""
    (node.directory / "data").mkdir(parents=True, exist_ok=True)
    props = _kafka_config(layout, node)
    if (node.directory / "data" / "meta.properties").exists():
        return None
    return subprocess.Popen(
        format_command(java, classpath, cluster_id, props, scram),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _spawn_node(settings: Settings, node: KafkaNode, *, java: str, classpath: str) -> int:
    env = {**os.environ, "KAFKA_HEAP_OPTS": KAFKA_HEAP}
    cmd = [
        java,
        *KAFKA_HEAP.split(),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(node.directory / "server.properties"),
    ]
    pid = _spawn(cmd, cwd=node.directory, log=node.directory / "stdout.log", env=env)
    _pid_file(settings, node.name).write_text(str(pid))
    return pid


def _label(layout: KafkaLayout, node: KafkaNode) -> str:
    return "Kafka" if layout.brokers == 1 else f"Kafka broker {node.node_id}"


def kafka_up(
    settings: Settings,
    report: Report,
    *,
    brokers: int | None = None,
    secure: bool | None = None,
) -> list[PartStatus]:
    """Start every node of the stack that is down (all of them the first time), then wait
    until each one round-trips a record; nodes already up are left as they are."""
    layout = kafka_layout(settings, brokers, secure)
    running: dict[str, int] = {}  # ours, alive: wait for it
    external: list[PartStatus] = []
    to_start: list[KafkaNode] = []
    for node in layout.nodes:
        pid = _read_pid(settings, node.name)
        if pid is not None:
            running[node.name] = pid
        elif port_open(node.host, node.port):
            if not kafka_node_ready(node):
                raise StackError(
                    f"{node.address} is taken by something that is not a working broker"
                )
            report(f"{_label(layout, node)} already up at {node.address}")
            external.append(PartStatus(node.name, node.address, True, False, None))
        elif node.host not in LOOPBACK:
            raise StackError(
                f"SCAMWATCH_KAFKA_BOOTSTRAP points at {node.address}, which does not answer; "
                "the local stack only starts Kafka on loopback"
            )
        else:
            to_start.append(node)
    started: dict[str, int] = {}
    if to_start:
        started = _start_nodes(settings, layout, to_start, report)
    return external + _wait_ready(settings, layout, running, started, report)


def _start_nodes(
    settings: Settings, layout: KafkaLayout, nodes: list[KafkaNode], report: Report
) -> dict[str, int]:
    java = shutil.which("java")
    if not java:
        raise StackError("Java (`java`, 17 or newer) is not installed; Kafka needs it")
    classpath = f"{kafka_libs(settings, report)}/*"
    layout.root.mkdir(parents=True, exist_ok=True)
    (layout.root / LAYOUT_FILE).write_text(
        json.dumps({"brokers": layout.brokers, "secure": layout.secure}) + "\n"
    )
    id_file = layout.root / "cluster.id"
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    cluster_id = id_file.read_text().strip()
    scram = None
    if layout.secure:
        _make_tls(layout, report)
        scram = _scram_user(settings, layout, report)
    formats = {
        node.name: _start_node(
            layout,
            node,
            java=java,
            classpath=classpath,
            cluster_id=cluster_id,
            scram=scram,
        )
        for node in nodes
    }
    secret = scram.rsplit("password=", 1)[1][:-1] if scram else None
    for name, proc in formats.items():
        if proc is None:
            continue
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage of {name} failed:\n{_redact(out, secret)}")
    started: dict[str, int] = {}
    for node in nodes:
        pid = _spawn_node(settings, node, java=java, classpath=classpath)
        started[node.name] = pid
        report(f"starting {_label(layout, node)} {KAFKA_VERSION} on {node.address} (pid {pid}) ...")
    return started


def _wait_ready(
    settings: Settings,
    layout: KafkaLayout,
    running: dict[str, int],
    started: dict[str, int],
    report: Report,
) -> list[PartStatus]:
    pids = {**running, **started}
    waiting = [n for n in layout.nodes if n.name in pids]
    statuses: list[PartStatus] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while waiting and time.monotonic() < deadline:
        for node in list(waiting):
            pid = pids[node.name]
            log = node.directory / "server.log"
            if not _alive(pid):
                _pid_file(settings, node.name).unlink(missing_ok=True)
                raise StackError(
                    f"{_label(layout, node)} exited during start; the end of {log}:\n"
                    f"{_tail(log)}\n{_tail(node.directory / 'stdout.log', 10)}"
                )
            if kafka_node_ready(node, timeout=10):
                if node.name in started:
                    report(
                        f"{_label(layout, node)} up at {node.address} "
                        "(produce/consume round trip OK)"
                    )
                else:
                    report(f"{_label(layout, node)} already up at {node.address}")
                statuses.append(
                    PartStatus(node.name, node.address, True, True, pid, listeners=node.listeners())
                )
                waiting.remove(node)
        if waiting:
            time.sleep(1)
    if waiting:
        node = waiting[0]
        raise StackError(
            f"{_label(layout, node)} did not become ready at {node.address} in "
            f"{READY_TIMEOUT_S:.0f} s; the end of {node.directory / 'server.log'}:\n"
            f"{_tail(node.directory / 'server.log')}"
        )
    order = [n.name for n in layout.nodes]
    return sorted(statuses, key=lambda s: order.index(s.name))


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


def stack_up(
    settings: Settings,
    report: Report = print,
    *,
    brokers: int | None = None,
    secure: bool | None = None,
) -> list[PartStatus]:
    """Bring up Redis and every Kafka node that is down. ``brokers``/``secure`` choose the
    Kafka layout the first time; after that the state directory remembers it."""
    with _stack_lock(settings):
        return [
            redis_up(settings, report),
            *kafka_up(settings, report, brokers=brokers, secure=secure),
        ]


def kafka_part_name(settings: Settings, broker: int) -> str:
    """The part name of broker ``broker`` (1-based), for ``stack_down(only=...)``."""
    return kafka_layout(settings).node(broker).name


def stack_down(
    settings: Settings, report: Report = print, *, only: Iterable[str] | None = None
) -> list[str]:
    """Stop what `stack up` started (and only that), or only the parts named in ``only``
    (``kafka`` names every Kafka node); returns the names stopped."""
    kafka_names = [n.name for n in kafka_layout(settings).nodes]
    wanted = set(only) if only is not None else {*kafka_names, "redis"}
    if "kafka" in wanted:
        wanted |= set(kafka_names)
    stopped: dict[str, int] = {}
    with _stack_lock(settings):
        for name in (*kafka_names, "redis"):
            if name not in wanted:
                continue
            pid = _read_pid(settings, name)
            if pid is None:
                report(f"{name}: not started by scamwatch, left alone")
                continue
            report(f"stopping {name} (pid {pid}) ...")
            stopped[name] = pid
        _stop_pids(stopped.values())
        for name in stopped:
            _pid_file(settings, name).unlink(missing_ok=True)
    return list(stopped)


def stack_status(settings: Settings) -> list[PartStatus]:
    rhost, rport = redis_address(settings)
    rpid = _read_pid(settings, "redis")
    parts = [PartStatus("redis", f"{rhost}:{rport}", redis_ping(settings), rpid is not None, rpid)]
    for node in kafka_layout(settings).nodes:
        pid = _read_pid(settings, node.name)
        is_open = port_open(node.host, node.port)
        parts.append(
            PartStatus(
                node.name,
                node.address,
                is_open and kafka_node_ready(node, timeout=10),
                pid is not None,
                pid,
                detail="" if is_open else "port closed",
                listeners=node.listeners(),
            )
        )
    return parts
