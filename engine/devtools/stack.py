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
    redis/                   redis/redis.log   redis.pid   redis/stack.json
    redis/node-<i>/nodes.conf  redis/node-<i>/redis.log  redis-<i>.pid  (a Redis Cluster)
    redis/tls/  redis/users.acl  redis/client.env                    (secured Redis only)

Redis is one node, or a Redis Cluster of N masters (no replicas) on consecutive ports made
with ``redis-cli --cluster create``; either may be secured (TLS only, an ACL user).

The Kafka jars are fetched once by Maven into ``SCAMWATCH_CACHE_DIR`` (default
``~/.cache/scamwatch``) ``/kafka-<version>/libs`` and reused by every checkout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

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
        settings.redis.url.get_secret_value(),
        socket_timeout=2,
        socket_connect_timeout=2,
        **settings.redis.client_options(),
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


@dataclass(frozen=True, slots=True)
class RedisNode:
    """One redis-server process: the only one, or a master of the Redis Cluster."""

    index: int  # 1-based
    name: str  # the part's name: "redis" alone, "redis-<i>" in a cluster
    host: str
    port: int  # the client port (TLS only when secured)
    directory: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def bus_port(self) -> int:
        return self.port + 10_000  # Redis Cluster's own convention


@dataclass(frozen=True, slots=True)
class RedisLayout:
    """The Redis part of a state directory: one node or a cluster, secured or not."""

    root: Path
    count: int
    secure: bool
    nodes: tuple[RedisNode, ...]

    @property
    def clustered(self) -> bool:
        return self.count > 1

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def client_env(self) -> Path:
        """Client settings for the secured Redis, password included (mode 0600)."""
        return self.root / "client.env"

    @property
    def acl_file(self) -> Path:
        return self.root / "users.acl"

    def node(self, index: int) -> RedisNode:
        if not 1 <= index <= self.count:
            raise StackError(
                f"there is no Redis node {index}: the stack in {self.root.parent} has "
                f"{self.count} (1..{self.count})"
            )
        return self.nodes[index - 1]

    def label(self, node: RedisNode) -> str:
        return f"Redis node {node.index}" if self.clustered else "Redis"


def redis_layout(
    settings: Settings, nodes: int | None = None, secure: bool | None = None
) -> RedisLayout:
    """The nodes for these settings: consecutive ports from SCAMWATCH_REDIS_URL's; the
    state directory remembers the layout it was first started with."""
    root = state_dir(settings) / "redis"
    recorded = _recorded_redis_layout(root)
    if nodes is None:
        nodes = recorded[0] if recorded else 1
    if recorded and (nodes != recorded[0] or (secure and not recorded[1])):
        raise StackError(
            f"{root} holds a {recorded[0]}-node{' secured' if recorded[1] else ''} Redis; "
            "stop it (`scamwatch stack down`) and remove that directory, or give "
            "SCAMWATCH_STATE_DIR another directory"
        )
    if nodes == 2 or nodes < 1:
        raise StackError("a Redis Cluster needs at least 3 masters: --redis-nodes 1, or 3 and up")
    secure = recorded[1] if recorded else bool(secure)
    host, first = redis_address(settings)
    if nodes > 1 and first + nodes - 1 + 10_000 > 65_535:
        raise StackError(f"Redis Cluster bus ports (client port + 10000) pass 65535 from {first}")
    return RedisLayout(
        root,
        nodes,
        secure,
        tuple(
            RedisNode(
                index=i,
                name="redis" if nodes == 1 else f"redis-{i}",
                host=host,
                port=first + i - 1,
                directory=root if nodes == 1 else root / f"node-{i}",
            )
            for i in range(1, nodes + 1)
        ),
    )


def _recorded_redis_layout(root: Path) -> tuple[int, bool] | None:
    try:
        saved = json.loads((root / LAYOUT_FILE).read_text())
        return int(saved["nodes"]), bool(saved["secure"])
    except FileNotFoundError:
        return (1, False) if root.exists() else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"cannot read {root / LAYOUT_FILE}: {exc}") from exc


def redis_part_name(settings: Settings, index: int) -> str:
    """The part name of Redis node ``index`` (1-based), for ``stack_down(only=...)``."""
    return redis_layout(settings).node(index).name


def _redis_credentials(layout: RedisLayout) -> tuple[str, str] | None:
    """The ACL user and password of a secured stack, as recorded when it was made."""
    try:
        text = layout.client_env.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith("SCAMWATCH_REDIS_URL="):
            parts = urlsplit(line.split("=", 1)[1])
            return unquote(parts.username or ""), unquote(parts.password or "")
    raise StackError(f"{layout.client_env} names no SCAMWATCH_REDIS_URL")


def _node_client(settings: Settings, layout: RedisLayout, node: RedisNode) -> redis.Redis:
    """A client of one node alone (never a cluster client): the settings' URL and CA for a
    plain stack, the recorded user, password and CA for a secured one."""
    timeouts: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if not layout.secure:
        parts = urlsplit(settings.redis.url.get_secret_value())
        netloc = parts.netloc.rsplit("@", 1)
        hostport = (
            f"{node.host}:{node.port}" if ":" not in node.host else f"[{node.host}]:{node.port}"
        )
        netloc[-1] = hostport
        url = parts._replace(netloc="@".join(netloc)).geturl()
        return redis.Redis.from_url(url, **timeouts, **settings.redis.client_options())
    user, password = _redis_credentials(layout) or ("", "")
    return redis.Redis(
        host=node.host,
        port=node.port,
        username=user,
        password=password,
        ssl=True,
        ssl_ca_certs=str(layout.tls_dir / "ca.pem"),
        **timeouts,
    )


def _node_info(settings: Settings, layout: RedisLayout, node: RedisNode) -> dict[str, Any] | None:
    """The node's INFO cluster / CLUSTER INFO fields, or None when it does not answer."""
    client = _node_client(settings, layout, node)
    try:
        client.ping()
        if not layout.clustered:
            return {}
        return cast("dict[str, Any]", client.cluster("INFO"))
    except redis.RedisError:
        return None
    finally:
        client.close()


def _redis_secure_setup(settings: Settings, layout: RedisLayout, report: Report) -> None:
    """A local CA and server certificate (openssl), the ACL file and the client settings,
    made once. The user and password are the URL's when it has them, else ``scamwatch``
    and a random password; the password goes to 0600 files only, never to the terminal."""
    tls = layout.tls_dir
    if not (tls / "server.pem").exists():
        if not shutil.which("openssl"):
            raise StackError("`openssl` is not installed; the secured Redis makes certificates")
        tls.mkdir(parents=True, exist_ok=True)
        tls.chmod(0o700)
        report(f"making a local CA and Redis certificate in {tls} ...")
        (tls / "server.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"  # cluster nodes are each other's clients
        )
        steps = {
            "making the CA": "openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650"
            " -keyout ca.key -out ca.pem -subj '/CN=scamwatch local Redis CA'"
            " -addext basicConstraints=critical,CA:TRUE"
            " -addext keyUsage=critical,keyCertSign,cRLSign",
            "making the Redis key": "openssl req -newkey rsa:2048 -nodes -sha256"
            " -keyout server.key -out server.csr -subj /CN=127.0.0.1",
            "signing the Redis certificate": "openssl x509 -req -in server.csr -CA ca.pem"
            " -CAkey ca.key -CAcreateserial -out server.pem -days 825 -sha256"
            " -extfile server.ext",
        }
        for what, cmd in steps.items():
            _run_tool(shlex.split(cmd), what, tls)
        for key in ("ca.key", "server.key"):
            (tls / key).chmod(0o600)
    if _redis_credentials(layout) is not None:
        return
    given = urlsplit(settings.redis.url.get_secret_value())
    password = unquote(given.password) if given.password else secrets.token_urlsafe(24)
    user = unquote(given.username) if given.username else "default" if given.password else ""
    user = user or "scamwatch"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", user) or not re.fullmatch(r"\S+", password):
        raise StackError(
            "SCAMWATCH_REDIS_URL: the local stack's ACL user must be letters, digits, '.', '_', "
            "'-' and its password must hold no white space"
        )
    # the ACL file holds the password's SHA-256 only (``#``), not the password
    digest = hashlib.sha256(password.encode()).hexdigest()
    acl = f"user {user} on #{digest} ~* &* +@all\n"
    if user != "default":
        acl = f"user default off\n{acl}"
    _write_secret(layout.acl_file, acl)
    first = layout.nodes[0]
    url = f"rediss://{quote(user, safe='')}:{quote(password, safe='')}@{first.address}/0"
    _write_secret(
        layout.client_env,
        "# written by `scamwatch stack up --redis-secure`: TLS and an ACL user\n"
        f"SCAMWATCH_REDIS_URL={url}\n"
        f"SCAMWATCH_REDIS_CA_FILE={tls / 'ca.pem'}\n",
    )
    report(
        f"Redis ACL user {user!r} "
        f"({'from SCAMWATCH_REDIS_URL' if given.password else 'random password'}); "
        f"client settings in {layout.client_env} (mode 0600)"
    )


def _redis_command(binary: str, layout: RedisLayout, node: RedisNode) -> list[str]:
    bind = _bind(node.host)
    cmd = [binary, "--bind", bind, "--dir", str(node.directory), "--save", "", "--appendonly"]
    cmd += ["no", "--daemonize", "no", "--protected-mode", "yes"]
    if layout.secure:
        tls = layout.tls_dir
        cmd += ["--port", "0", "--tls-port", str(node.port), "--tls-auth-clients", "no"]
        cmd += [
            "--tls-cert-file",
            str(tls / "server.pem"),
            "--tls-key-file",
            str(tls / "server.key"),
        ]
        cmd += ["--tls-ca-cert-file", str(tls / "ca.pem"), "--aclfile", str(layout.acl_file)]
    else:
        cmd += ["--port", str(node.port)]
    if layout.clustered:
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        cmd += ["--cluster-port", str(node.bus_port), "--cluster-node-timeout", "5000"]
        # a node lost (no replicas here) takes its slots down, not the others'
        cmd += ["--cluster-require-full-coverage", "no"]
        if layout.secure:
            cmd += ["--tls-cluster", "yes"]
    return cmd


def redis_up(
    settings: Settings, report: Report, *, nodes: int | None = None, secure: bool | None = None
) -> list[PartStatus]:
    """Start every Redis node that is down (all of them the first time), make the cluster
    the first time (``redis-cli --cluster create``), and wait until every node answers and,
    in a cluster, every node says ``cluster_state:ok``."""
    layout = redis_layout(settings, nodes, secure)
    statuses: dict[str, PartStatus] = {}
    running: dict[str, int] = {}
    started: dict[str, int] = {}
    binary = ""
    for node in layout.nodes:
        pid = _read_pid(settings, node.name)
        if pid is None and _node_info(settings, layout, node) is not None:
            report(f"{layout.label(node)} already up at {node.address}")
            statuses[node.name] = PartStatus(node.name, node.address, True, False, None)
            continue
        if pid is not None:
            running[node.name] = pid  # ours and running: wait for it with the others
            continue
        if node.host not in LOOPBACK:
            raise StackError(
                f"SCAMWATCH_REDIS_URL points at {node.address}, which does not answer; "
                "the local stack only starts Redis on loopback"
            )
        if port_open(node.host, node.port):
            raise StackError(f"{node.address} is taken by something that does not answer Redis")
        binary = binary or _redis_server_binary(report)
        if not started and not running and not statuses:
            layout.root.mkdir(parents=True, exist_ok=True)
            (layout.root / LAYOUT_FILE).write_text(
                json.dumps({"nodes": layout.count, "secure": layout.secure}) + "\n"
            )
            if layout.secure:
                _redis_secure_setup(settings, layout, report)
        node.directory.mkdir(parents=True, exist_ok=True)
        pid = _spawn(
            _redis_command(binary, layout, node),
            cwd=node.directory,
            log=node.directory / "redis.log",
        )
        _pid_file(settings, node.name).write_text(str(pid))
        started[node.name] = pid
        report(f"starting {layout.label(node)} on {node.address} (pid {pid}) ...")
    for node in layout.nodes:
        pid = started.get(node.name) or running.get(node.name)
        if pid is not None:
            _wait_redis_node(settings, layout, node, pid)
            up = "up" if node.name in started else "already up"
            report(f"{layout.label(node)} {up} at {node.address}")
            statuses[node.name] = PartStatus(
                node.name, node.address, True, True, pid, listeners=_listeners(layout)
            )
    if layout.clustered:
        _form_cluster(settings, layout, report)
        for node in layout.nodes:
            statuses[node.name] = replace(statuses[node.name], detail="cluster ok")
    return [statuses[n.name] for n in layout.nodes]


def _listeners(layout: RedisLayout) -> str:
    if not layout.secure:
        return ""
    creds = _redis_credentials(layout)
    return f"TLS only, ACL user {creds[0] if creds else '?'}"


def _wait_redis_node(settings: Settings, layout: RedisLayout, node: RedisNode, pid: int) -> None:
    log = node.directory / "redis.log"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _node_info(settings, layout, node) is not None:
            return
        if not _alive(pid):
            _pid_file(settings, node.name).unlink(missing_ok=True)
            break
        time.sleep(0.2)
    raise StackError(
        f"{layout.label(node)} did not answer at {node.address}; the end of {log}:\n{_tail(log)}"
    )


def _form_cluster(settings: Settings, layout: RedisLayout, report: Report) -> None:
    """``redis-cli --cluster create`` the first time (every node alone, no slot assigned);
    then wait until every node sees the cluster whole (``cluster_state:ok``)."""
    infos = [_node_info(settings, layout, n) or {} for n in layout.nodes]
    if all(int(i.get("cluster_slots_assigned", 0)) == 0 for i in infos):
        cli = shutil.which("redis-cli")
        if not cli:
            raise StackError("redis-cli is not installed (Debian's redis-tools, with redis-server)")
        cmd = [cli]
        env = {**os.environ}
        if layout.secure:
            user, password = _redis_credentials(layout) or ("", "")
            cmd += ["--tls", "--cacert", str(layout.tls_dir / "ca.pem"), "--user", user]
            env["REDISCLI_AUTH"] = password  # not on the command line, where `ps` shows it
        cmd += ["--cluster", "create", *(n.address for n in layout.nodes)]
        cmd += ["--cluster-replicas", "0", "--cluster-yes"]
        report(
            f"making the Redis Cluster of {layout.count} masters (redis-cli --cluster create) ..."
        )
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if done.returncode != 0:
            secret = env.get("REDISCLI_AUTH")
            raise StackError(
                f"`redis-cli --cluster create` failed (exit {done.returncode}):\n"
                f"{_redact(done.stdout + done.stderr, secret).strip()[-2000:]}"
            )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        infos = [_node_info(settings, layout, n) or {} for n in layout.nodes]
        if all(i.get("cluster_state") == "ok" for i in infos):
            report(f"Redis Cluster ok: {layout.count} masters, 16384 slots")
            return
        time.sleep(0.5)
    raise StackError(
        f"the Redis Cluster did not reach cluster_state:ok in 60 s; node logs under {layout.root}"
    )


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
    redis_nodes: int | None = None,
    redis_secure: bool | None = None,
) -> list[PartStatus]:
    """Bring up every Redis and Kafka node that is down. ``brokers``/``secure`` choose the
    Kafka layout the first time, ``redis_nodes``/``redis_secure`` Redis's; after that the
    state directory remembers them."""
    with _stack_lock(settings):
        return [
            *redis_up(settings, report, nodes=redis_nodes, secure=redis_secure),
            *kafka_up(settings, report, brokers=brokers, secure=secure),
        ]


def kafka_part_name(settings: Settings, broker: int) -> str:
    """The part name of broker ``broker`` (1-based), for ``stack_down(only=...)``."""
    return kafka_layout(settings).node(broker).name


def stack_down(
    settings: Settings, report: Report = print, *, only: Iterable[str] | None = None
) -> list[str]:
    """Stop what `stack up` started (and only that), or only the parts named in ``only``
    (``kafka`` names every Kafka node, ``redis`` every Redis node); returns the names stopped."""
    kafka_names = [n.name for n in kafka_layout(settings).nodes]
    redis_names = [n.name for n in redis_layout(settings).nodes]
    wanted = set(only) if only is not None else {*kafka_names, *redis_names}
    if "kafka" in wanted:
        wanted |= set(kafka_names)
    if "redis" in wanted:
        wanted |= set(redis_names)
    stopped: dict[str, int] = {}
    with _stack_lock(settings):
        for name in (*kafka_names, *redis_names):
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
    layout = redis_layout(settings)
    parts = []
    for rnode in layout.nodes:
        rpid = _read_pid(settings, rnode.name)
        info = _node_info(settings, layout, rnode)
        if info is None:
            detail = "" if port_open(rnode.host, rnode.port) else "port closed"
        else:
            detail = f"cluster {info.get('cluster_state', '?')}" if layout.clustered else ""
        parts.append(
            PartStatus(
                rnode.name,
                rnode.address,
                info is not None,
                rpid is not None,
                rpid,
                detail=detail,
                listeners=_listeners(layout),
            )
        )
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
