"""The indicator store on a real Redis Cluster: `scamwatch stack up --redis-nodes 3` (three
masters on 17379..17381, a state directory of the module's own; the shared Kafka is used as
it is and left alone), found out from any node's URL, the whole store contract on it, and
one node stopped alone (`down --redis-node I`) and brought back by `up`.

One cluster serves the whole module; the node test runs last."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.cluster import RedisCluster

from engine.core.models import Indicator, IndicatorType
from engine.errors import StoreUnavailable
from engine.store.redis import RedisStore
from tests.integration.stack_support import OwnStack, own_stack, running
from tests.store_contract import MakeStore, StoreContract

pytestmark = pytest.mark.stack

T = IndicatorType
PORTS = (17379, 17380, 17381)
URLS = [f"redis://127.0.0.1:{port}/0" for port in PORTS]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[OwnStack]:
    state = tmp_path_factory.mktemp("redis-cluster") / "state"
    settings = {"SCAMWATCH_REDIS_URL": URLS[0], "SCAMWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap}
    with own_stack(state, settings, "--redis-nodes", "3") as stack:
        yield stack


@pytest.fixture
def prefix(cluster: OwnStack) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = RedisCluster.from_url(URLS[0])
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)  # one hash slot: the store's keys share the {i} tag
    client.close()


@pytest.fixture
def make_store(prefix: str) -> Iterator[MakeStore]:
    stores: list[RedisStore] = []

    def make(change_log_size: int = 100_000, batch_size: int = 5_000) -> RedisStore:
        # the URL of a node that does not own the store's slot: the client must follow
        store = RedisStore.from_url(
            URLS[1], prefix=prefix, change_log_size=change_log_size, batch_size=batch_size
        )
        assert store.clustered
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_up_makes_a_cluster_of_three_masters(cluster: OwnStack) -> None:
    assert "making the Redis Cluster of 3 masters" in cluster.output[0]
    for i, url in enumerate(URLS, start=1):
        client = redis.Redis.from_url(url)
        info = client.cluster("INFO")
        nodes = client.cluster("NODES")
        client.close()
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_size"]) == 3 and int(info["cluster_known_nodes"]) == 3
        assert sorted(n.split("@")[0] for n in nodes) == [f"127.0.0.1:{p}" for p in PORTS]
        assert all("master" in n["flags"] for n in nodes.values())
        assert (cluster.state / "redis" / f"node-{i}" / "nodes.conf").is_file()
        assert running(cluster.pid(f"redis-{i}"))


def test_the_store_finds_the_cluster_from_any_node(cluster: OwnStack, prefix: str) -> None:
    writer = RedisStore.from_url(URLS[0], prefix=prefix)
    writer.upsert([Indicator(T.PHONE, "+18005550199", ("ftc",))])
    for url in URLS:
        reader = RedisStore.from_url(url, prefix=prefix)
        assert reader.clustered
        assert reader.version() == 1
        assert reader.get(T.PHONE, "+18005550199") == writer.get(T.PHONE, "+18005550199")
        reader.close()
    # the keys really live on one master only: the others answer MOVED
    owner = writer.client.get_node_from_key(writer.version_key)
    assert isinstance(writer.client, RedisCluster) and owner is not None
    for url, port in zip(URLS, PORTS, strict=True):
        plain = redis.Redis.from_url(url)
        if port == owner.port:
            assert plain.get(writer.version_key) == b"1"
        else:
            with pytest.raises(redis.exceptions.MovedError):
                plain.get(writer.version_key)
        plain.close()
    writer.close()


def test_a_single_redis_is_not_taken_for_a_cluster(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    assert store.clustered is False
    store.close()


class TestStoreContractOnCluster(StoreContract):
    """Bulk load, snapshot (MULTI/EXEC on the slot's master), change log, version and the
    compare-and-set scripts, on the cluster."""


def test_threads_writing_the_same_entries(cluster: OwnStack, prefix: str) -> None:
    """Concurrent loaders on the cluster lose no update (compare-and-set retries)."""

    def write(source: str) -> None:
        store = RedisStore.from_url(URLS[int(source[1:])], prefix=prefix, batch_size=20)
        for _ in range(3):
            store.upsert(Indicator(T.PHONE, f"+1800555{i:04d}", (source,)) for i in range(60))
        store.close()

    threads = [threading.Thread(target=write, args=(f"s{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    reader = RedisStore.from_url(URLS[2], prefix=prefix)
    entries = list(reader.iter())
    assert len(entries) == 60
    assert all(e.sources == ("s0", "s1", "s2") for e in entries)
    assert reader.version() == 180
    reader.close()


def test_snapshot_is_consistent_with_its_version(cluster: OwnStack, prefix: str) -> None:
    writer = RedisStore.from_url(URLS[0], prefix=prefix)
    reader = RedisStore.from_url(URLS[2], prefix=prefix)
    done = threading.Event()

    def write() -> None:
        for i in range(200):
            writer.upsert([Indicator(T.DOMAIN, f"d{i}.example")])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    snapshots = 0
    while not done.is_set() or snapshots == 0:
        snap = reader.snapshot()
        assert len(snap.indicators) == snap.version
        snapshots += 1
    thread.join(timeout=60)
    assert reader.snapshot().version == 200
    writer.close()
    reader.close()


def _status_rows(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"(redis-\d)\s*│\s*\S+\s*│\s*(\w+)", stdout))


def test_one_node_stops_alone_and_up_brings_it_back(cluster: OwnStack, prefix: str) -> None:
    store = RedisStore.from_url(URLS[0], prefix=prefix, socket_timeout=2)
    store.upsert([Indicator(T.DOMAIN, "a.example")])
    owner = store.client.get_node_from_key(store.version_key)
    assert owner is not None
    node = PORTS.index(owner.port) + 1  # the master of the store's slot
    before = {i: cluster.pid(f"redis-{i}") for i in (1, 2, 3)}

    down = cluster.stack("down", "--redis-node", str(node))
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"stopped: redis-{node}" in down.stdout
    assert not running(before[node])
    assert all(running(before[i]) for i in (1, 2, 3) if i != node)
    status = cluster.stack("status")
    assert status.returncode == 1
    assert _status_rows(status.stdout) == {
        f"redis-{i}": "down" if i == node else "up" for i in (1, 2, 3)
    }, status.stdout
    # the slot's master is gone and has no replica: an error, bounded (a hang fails on
    # result()'s timeout), not a retry loop
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(StoreUnavailable) as info:
        pool.submit(store.version).result(timeout=60)
    assert info.value.retriable is True

    up = cluster.stack("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"starting Redis node {node}" in up.stdout
    assert "making the Redis Cluster" not in up.stdout  # it rejoins with its nodes.conf
    assert {i: cluster.pid(f"redis-{i}") for i in (1, 2, 3) if i != node} == {
        i: before[i] for i in (1, 2, 3) if i != node
    }
    status = cluster.stack("status")
    assert status.returncode == 0, status.stdout
    assert _status_rows(status.stdout) == {f"redis-{i}": "up" for i in (1, 2, 3)}
    assert status.stdout.count("cluster ok") == 3
    # the same client works again (the data is gone: the stack's Redis keeps none on disk)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert store.version() == 0
            break
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    store.upsert([Indicator(T.DOMAIN, "b.example")])
    assert store.version() == 1
    store.close()
