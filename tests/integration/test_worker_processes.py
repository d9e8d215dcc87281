"""``scamwatch worker --processes 2`` on the real stack: both children join the consumer group
and share the partitions, the parent's one /metrics sums both, SIGTERM to the parent stops
both with every offset committed, and a child killed outright takes the parent down with its
exit code after the other child was stopped cleanly."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import psutil
from prometheus_client.multiprocess import MultiProcessCollector

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    Read,
    Topics,
    WorkerProcess,
    call_event,
    group_lag,
    produce,
    read_topic,
    topics_fixture,
)

PARTITIONS = 4
SCAM_NUMBER = "+18005550199"


topics = topics_fixture(PARTITIONS)


def free_port_pair() -> int:
    """A port P with P and P+1 free (the two children's web ports)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two consecutive free ports")


def start_parent(topics: Topics, prefix: str, state_dir: Path) -> WorkerProcess:
    return WorkerProcess(
        topics,
        prefix,
        state_dir,
        web_port=free_port_pair(),
        extra_args=("--processes", "2"),
    ).start()


def per_child(parent: WorkerProcess, kind: str, name: str) -> dict[int, float]:
    """``name`` as each child process wrote it into the parent's multiprocess directory."""
    metrics_dir = parent.state_dir / "workers" / f"{parent.topics.app_id}-{parent.web_port}.metrics"
    out: dict[int, float] = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name == name:
                    out[pid] = out.get(pid, 0.0) + sample.value
    return out


def children_of(parent: WorkerProcess) -> list[psutil.Process]:
    assert parent.proc is not None
    return psutil.Process(parent.proc.pid).children()


def wait_shared(parent: WorkerProcess, timeout: float = 90.0) -> dict[int, float]:
    """Until both children hold part of the 2 x 4 input partitions; the share of each."""
    deadline = time.monotonic() + timeout
    shares: dict[int, float] = {}
    while time.monotonic() < deadline:
        assert parent.proc is not None
        if parent.proc.poll() is not None:
            raise AssertionError(f"parent exited {parent.proc.returncode}:\n{parent.log_tail()}")
        shares = per_child(parent, "gauge_livesum", "scamwatch_assigned_partitions")
        if len(shares) == 2 and min(shares.values()) > 0 and sum(shares.values()) == 8:
            return shares
        time.sleep(0.3)
    raise AssertionError(f"partitions not shared: {shares}\n{parent.log_tail()}")


def stop_all(parent: WorkerProcess) -> None:
    """Cleanup: kill the parent and its children, if still there."""
    assert parent.proc is not None
    if parent.proc.poll() is None:
        for child in children_of(parent):
            child.kill()
    parent.kill()


def event_ids(records: list[Read]) -> set[str]:
    return {str(r.json()["event_id"]) for r in records}


def test_two_processes_share_the_group_behind_one_metrics_and_stop_on_sigterm(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, topics: Topics, tmp_path: Path
) -> None:
    RedisStore.from_url(redis_url, prefix=key_prefix).upsert(
        [Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",))]
    )
    parent = start_parent(topics, key_prefix, tmp_path)
    try:
        shares = wait_shared(parent)
        assert {c.pid for c in children_of(parent)} == set(shares)
        m = parent.wait_metric(lambda m: m.get("scamwatch_assigned_partitions") == 8)
        assert m["scamwatch_worker_processes"] == 2

        calls = [
            (f"p{i % 5}:s{i % 61}".encode(), call_event(i, callee=SCAM_NUMBER)) for i in range(800)
        ]
        asyncio.run(produce(kafka_bootstrap, topics.calls, calls))
        expected = {f"c{i}" for i in range(800)}
        got = asyncio.run(
            read_topic(kafka_bootstrap, topics.alerts, until=lambda r: expected <= event_ids(r))
        )
        assert event_ids(got) == expected
        m = parent.wait_metric(lambda m: m.total("scamwatch_events_total") >= len(calls))
        events = per_child(parent, "counter", "scamwatch_events_total")
        assert len(events) == 2 and min(events.values()) > 0, events  # both did part of it
        # the parent's one endpoint is the sum of both children
        assert m.total("scamwatch_events_total") == sum(events.values())
        assert m.total("scamwatch_events_total", outcome="matched") >= len(calls)

        children = children_of(parent)
        assert parent.stop(signal.SIGTERM, timeout=60) == 0, parent.log_tail()
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
        lag = asyncio.run(group_lag(kafka_bootstrap, topics.app_id, [topics.calls]))
        assert lag and not any(lag.values()), lag  # offsets committed on the way out
    finally:
        stop_all(parent)


def test_a_killed_child_takes_the_parent_down_with_its_code(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, topics: Topics, tmp_path: Path
) -> None:
    RedisStore.from_url(redis_url, prefix=key_prefix).upsert(
        [Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",))]
    )
    parent = start_parent(topics, key_prefix, tmp_path)
    try:
        wait_shared(parent)
        victim, other = children_of(parent)
        victim.kill()
        assert parent.proc is not None
        code = parent.proc.wait(timeout=90)
        assert code == 128 + signal.SIGKILL, parent.log_tail()
        assert not (other.is_running() and other.status() != psutil.STATUS_ZOMBIE)
        log = parent.log_tail(400)
        assert f"worker process {victim.pid} exited unasked (exit 137)" in log
        assert f"worker process {other.pid} stopped (exit 0)" in log  # stopped, not killed
    finally:
        stop_all(parent)
