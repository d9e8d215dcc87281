"""Redis Cluster faults under a running worker: a 3-master Redis Cluster of the module's own
(`scamwatch stack up --redis-nodes 3` on free ports, its own SCAMWATCH_STATE_DIR; the shared
Kafka used as it is, with topics of the test's own), a real worker and the steady stream of
test_faults.py (100 inputs/s: scam calls, scam web events, every 10th not JSON).

Each test asserts the invariant of test_faults.py (every input ends as an alert or a dead
letter, every expected alert is on ``alerts``, no input ended clean, the worker never died)
and that the worker says what happened: ``scamwatch_indicator_store_up`` 0 and one warning
for the outage, not one per poll. Each prints a ``fault cost`` line; README "Faults and what
they cost" holds the measured numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from engine.settings import load_settings
from engine.store.redis import RedisStore
from tests.integration.stack_support import free_redis_cluster_port, running
from tests.integration.test_faults import (
    DEADLINE_S,
    LATE_NUMBER,
    PARTITIONS,
    SCAM_NUMBER,
    Cluster,
    Run,
    _load,
    _steady,
)
from tests.integration.worker_support import Topics, create_topics, delete_topics

pytestmark = pytest.mark.stack

NODES = 3  # masters, no replicas
# the shared Kafka has one broker: the worker's own topics (the discover table's changelog)
# get one replica
WORKER_ENV = {"SCAMWATCH_TOPIC_REPLICATION": "1"}


class RedisCluster:
    """The module's Redis Cluster and the shared Kafka, driven through `scamwatch stack`."""

    def __init__(self, cluster: Cluster, first_port: int) -> None:
        self.stack = cluster  # `stack up` / `down` with the module's state directory
        self.ports = tuple(first_port + i for i in range(NODES))

    @property
    def url(self) -> str:
        return self.stack.redis_url

    def pids(self) -> list[int]:
        return [int((self.stack.state / f"redis-{i}.pid").read_text()) for i in (1, 2, 3)]

    def owner(self, prefix: str) -> int:
        """The node (1-based) that holds the store's slot (every key of it: the {i} tag)."""
        store = RedisStore.from_url(self.url, prefix=prefix)
        try:
            client = store.client
            assert store.clustered
            node = client.get_node_from_key(store.version_key)
            assert node is not None
            return self.ports.index(int(node.port)) + 1
        finally:
            store.close()

    def shutdown_all(self) -> None:
        """Every node writes its data (SHUTDOWN SAVE) and exits, as in a planned restart of a
        persistent cluster: the stack's nodes keep nothing on disk otherwise, and a cluster
        that comes back empty is a wiped store, not this fault."""
        pids = self.pids()

        def shutdown(port: int) -> None:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
            with contextlib.suppress(redis.ConnectionError):  # it closes the connection
                client.shutdown(save=True)
            client.close()

        with ThreadPoolExecutor(max_workers=NODES) as pool:  # all at once (each takes ~4 s)
            list(pool.map(shutdown, self.ports))
        deadline = time.monotonic() + DEADLINE_S
        while any(running(pid) for pid in pids):
            assert time.monotonic() < deadline, "the Redis nodes did not exit"
            time.sleep(0.1)

    def stop_node(self, node: int) -> None:
        done = self.stack.run("down", "--redis-node", str(node))
        assert f"stopped: redis-{node}" in done.stdout, done.stdout


@pytest.fixture(scope="module")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[RedisCluster]:
    state = tmp_path_factory.mktemp("faults-redis-cluster") / "state"
    port = free_redis_cluster_port(NODES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMWATCH_")}
    env |= {
        "SCAMWATCH_CACHE_DIR": os.environ.get("SCAMWATCH_CACHE_DIR", "~/.cache/scamwatch"),
        "SCAMWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SCAMWATCH_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "SCAMWATCH_STATE_DIR": str(state),
        "COLUMNS": "200",
    }
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap},
        redis={"url": env["SCAMWATCH_REDIS_URL"]},
        stack={"state_dir": str(state), "cache_dir": env["SCAMWATCH_CACHE_DIR"]},
    )
    stack = Cluster(env, state, kafka_bootstrap, env["SCAMWATCH_REDIS_URL"], settings)
    try:
        up = stack.run("up", "--redis-nodes", str(NODES))
        assert "Redis Cluster ok: 3 masters" in up.stdout, up.stdout
        yield RedisCluster(stack, port)
    finally:
        pids = [int(p.read_text()) for p in state.glob("redis-*.pid")]
        stack.run("down")  # the Redis nodes only: the shared Kafka is not this stack's
        assert not [pid for pid in pids if running(pid)], "a Redis node outlived `stack down`"


@pytest.fixture
def run(redis_cluster: RedisCluster, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Run]:
    redis_cluster.stack.up()  # a node a failed or earlier test left down comes back
    base = f"rcfaults-{os.urandom(6).hex()}"
    topics = Topics(base)
    asyncio.run(create_topics(kafka_bootstrap, topics.all, partitions=PARTITIONS))
    made = Run(redis_cluster.stack, topics, redis_cluster.url, f"test:{base}:", tmp_path)
    try:
        yield made
    finally:
        if made.stream is not None and made.stream._thread.is_alive():
            with contextlib.suppress(AssertionError):
                made.stream.stop()
        for w in made.workers:
            w.kill()
        asyncio.run(delete_topics(kafka_bootstrap, topics.made))


def test_whole_redis_cluster_stopped_mid_stream_then_started(
    run: Run, redis_cluster: RedisCluster
) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    worker = run.worker("w1", **WORKER_ENV)
    worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1, DEADLINE_S)
    before = _steady(run, worker)

    redis_cluster.shutdown_all()
    stopped = time.monotonic()  # every node has exited
    worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 0, DEADLINE_S)
    noticed = time.monotonic() - stopped
    # matching on the snapshot meanwhile, and saying so once, not once per poll
    run.wait_processed(before + 300, "with the Redis Cluster down")
    errors = worker.metrics()["scamwatch_indicator_store_errors_total"]
    worker.wait_metric(
        lambda m: m["scamwatch_indicator_store_errors_total"] >= errors + 3, DEADLINE_S
    )
    assert worker.log_tail(400).count("indicator store unreachable") == 1, worker.log_tail(400)

    restarted = time.time()
    redis_cluster.stack.up()
    worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1, DEADLINE_S)
    resynced = time.time() - restarted
    # following changes again: a number loaded now is matched (the stream switches to it)
    _load(run.redis_url, run.redis_prefix, LATE_NUMBER)
    store = RedisStore.from_url(run.redis_url, prefix=run.redis_prefix)
    version = store.version()
    store.close()
    worker.wait_metric(lambda m: m["scamwatch_indicator_version"] == version, DEADLINE_S)
    assert run.stream is not None
    run.stream.callee = LATE_NUMBER
    at_switch = run.processed()
    run.wait_processed(at_switch + 300, "after the Redis Cluster came back")
    cost = run.settle("the whole Redis Cluster stopped, started", restarted)
    print(
        f"store down noticed {noticed:.2f} s after the nodes exited, up again "
        f"{resynced:.2f} s after `stack up` was called; pause {cost['pause_s']} s"
    )
    assert "indicator store reachable" in worker.log_tail(400)


def test_one_redis_cluster_node_stopped_for_good(run: Run, redis_cluster: RedisCluster) -> None:
    _load(run.redis_url, run.redis_prefix, SCAM_NUMBER)
    worker = run.worker("w1", **WORKER_ENV)
    worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1, DEADLINE_S)
    before = _steady(run, worker)

    node = redis_cluster.owner(run.redis_prefix)  # no replica: the store's slot goes down
    stopped_at = time.time()
    stopped = time.monotonic()
    redis_cluster.stop_node(node)
    worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 0, DEADLINE_S)
    noticed = time.monotonic() - stopped
    down = run.wait_processed(before + 300, "with the store's node down")
    errors = worker.metrics()["scamwatch_indicator_store_errors_total"]
    # it keeps trying (every poll fails, each bounded), and said so once
    worker.wait_metric(
        lambda m: m["scamwatch_indicator_store_errors_total"] >= errors + 3, DEADLINE_S
    )
    run.wait_processed(down + 300, "with the store's node down, later")
    log = worker.log_tail(400)
    assert log.count("indicator store unreachable") == 1, log
    cost = run.settle(f"Redis Cluster node {node} (the store's slot) stopped for good", stopped_at)
    assert worker.metrics()["scamwatch_indicator_store_up"] == 0  # and says so to the end
    print(f"store down noticed after {noticed:.2f} s; pause {cost['pause_s']} s")
