"""The worker end to end on a Redis Cluster, and on a secured one (TLS only, an ACL user):
`scamwatch stack up --redis-nodes 3 [--redis-secure]` on free ports with a state directory of
the module's own (the shared Kafka used as it is, topics of the test's own); indicators
loaded with `scamwatch indicators load`; the worker started with SCAMWATCH_* settings alone
(the URL of one node; the CA file when secured); the expected alerts on ``alerts``, nothing
for the clean events; no password in anything the commands and the worker wrote."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.stack_support import free_redis_cluster_port, running
from tests.integration.worker_support import (
    Read,
    Topics,
    WorkerProcess,
    call_event,
    produce,
    read_topic,
    topics_fixture,
    web_event,
)

pytestmark = pytest.mark.stack

USER = "sw-worker"
PASSWORD = f"pw-{uuid.uuid4().hex}"
NODES = 3
SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
FEED = (
    "type,value,source,severity,tags\n"
    "phone,+1 (800) 555-0199,cluster-feed,high,tech-support\n"
    "domain,evil-support.example,cluster-feed,critical,tech-support\n"
)


@dataclass
class ClusterStack:
    """A Redis Cluster of the module's own and the settings its clients use."""

    secure: bool
    state: Path
    env: dict[str, str]  # SCAMWATCH_* of every command of the test (and nothing else's)
    outputs: list[str] = field(default_factory=list)  # everything the commands printed

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env=base | {"COLUMNS": "200"} | self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done


@pytest.fixture(scope="module", params=["plain", "secured"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[ClusterStack]:
    secure = request.param == "secured"
    state = tmp_path_factory.mktemp(f"worker-redis-cluster-{request.param}") / "state"
    port = free_redis_cluster_port(NODES)
    url = (
        f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
        if secure
        else f"redis://127.0.0.1:{port}/0"
    )
    env = {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_STATE_DIR": str(state),
        "SCAMWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SCAMWATCH_REDIS_URL": url,
    }
    stack = ClusterStack(secure, state, env)
    up_args = ["--redis-nodes", str(NODES), *(["--redis-secure"] * secure)]
    try:
        up = stack.run("stack", "up", *up_args)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Redis Cluster ok: {NODES} masters" in up.stdout, up.stdout
        if secure:
            assert f"TLS only, ACL user {USER}" in up.stdout, up.stdout
            stack.env["SCAMWATCH_REDIS_CA_FILE"] = str(state / "redis" / "tls" / "ca.pem")
        yield stack
    finally:
        pids = [int(p.read_text()) for p in state.glob("redis-*.pid")]
        down = stack.run("stack", "down")  # the Redis nodes only: the shared Kafka is not its
        assert down.returncode == 0, down.stdout + down.stderr
        assert not [pid for pid in pids if running(pid)], "a Redis node outlived `stack down`"


topics = topics_fixture(2)


def _outcomes(records: list[Read]) -> set[tuple[str, str]]:
    return {(str(r.json()["event_id"]), str(r.json()["rule"])) for r in records}


def test_worker_matches_indicators_loaded_into_the_redis_cluster(
    cluster: ClusterStack,
    topics: Topics,
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    load = cluster.run("indicators", "load", str(feed), env={"SCAMWATCH_REDIS_PREFIX": prefix})
    assert load.returncode == 0, load.stdout + load.stderr
    listed = cluster.run("indicators", "list", env={"SCAMWATCH_REDIS_PREFIX": prefix})
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert SCAM_NUMBER in listed.stdout and SCAM_DOMAIN in listed.stdout, listed.stdout

    for name in [k for k in os.environ if k.startswith("SCAMWATCH_")]:
        monkeypatch.delenv(name)  # the worker reads the settings below and nothing else
    worker = WorkerProcess(topics, prefix, tmp_path / "worker", extra_env=cluster.env).start()
    try:
        worker.wait_assigned()
        ready = worker.wait_metric(
            lambda m: (
                m["scamwatch_indicator_store_up"] == 1 and m["scamwatch_indicator_version"] == 2
            )
        )
        assert ready.total("scamwatch_indicators") == 2
        assert "indicator store: Redis Cluster" in worker.log_tail(400), worker.log_tail(400)
        asyncio.run(
            produce(
                kafka_bootstrap,
                topics.calls,
                [
                    (b"p1:s1", call_event(1, callee="+1 800 555 0199")),
                    (b"p1:s3", call_event(3, callee="+1 202 555 0123")),
                ],
            )
        )
        asyncio.run(
            produce(
                kafka_bootstrap,
                topics.web,
                [
                    (b"p1:s2", web_event(2, host=f"pay.{SCAM_DOMAIN}")),
                    (b"p1:s4", web_event(4, host="example.org")),
                ],
            )
        )
        expected = {("c1", "callee_scam_number"), ("w2", "host_scam_domain")}
        got = asyncio.run(
            read_topic(
                kafka_bootstrap, topics.alerts, until=lambda r: expected <= _outcomes(r), within=60
            )
        )
        assert _outcomes(got) >= expected
        # the clean events were processed too, and raised nothing
        done = worker.wait_metric(lambda m: m.total("scamwatch_events_total") == 4)
        assert done.total("scamwatch_events_total", outcome="clean") == 2
    finally:
        code = worker.stop()
        assert worker.log_path is not None
        cluster.outputs.append(worker.log_path.read_text(errors="replace"))
    assert code == 0, worker.log_tail()
    if cluster.secure:
        leaked = [i for i, text in enumerate(cluster.outputs) if PASSWORD in text]
        assert not leaked, f"the Redis password appears in outputs {leaked}"
        logs = [
            p for p in cluster.state.rglob("*.log") if PASSWORD in p.read_text(errors="replace")
        ]
        assert not logs, f"the Redis password appears in {logs}"
