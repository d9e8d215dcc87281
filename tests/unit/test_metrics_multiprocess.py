"""The worker's metrics under ``--processes``: two real processes write them in
prometheus-client's multiprocess mode and the parent's merge reads what an operator needs
(counters summed, each gauge merged as engine/metrics.py says, an exited child's gauges
dropped)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from engine.metrics import WorkerMetrics, mark_process_dead

CHILD = textwrap.dedent(
    """
    import os
    import sys
    from engine.metrics import WorkerMetrics
    m = WorkerMetrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    events, phones, version, up, partitions, lag = (int(a) for a in sys.argv[1:7])
    m.events.labels(stream="calls", outcome="matched").inc(events)
    m.indicators.labels(type="phone").set(phones)
    m.indicator_version.set(version)
    m.store_up.set(up)
    m.assigned_partitions.set(partitions)
    m.consumer_lag.labels("calls", "0").set(lag)
    if lag == 0:
        m.drop_lag("calls", "0")  # this one lost the partition
    print(__import__("os").getpid())
    """
)


def child(path: Path, *values: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, values)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def merged(path: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def test_two_processes_merge_as_each_metric_says(tmp_path: Path) -> None:
    a = child(tmp_path, 30, 1000, 7, 1, 3, 5)
    b = child(tmp_path, 12, 1000, 6, 0, 5, 0)  # a version behind, Redis unreachable
    m = merged(tmp_path)
    assert m["scamwatch_events_total{outcome=matched,stream=calls}"] == 42  # summed
    assert m["scamwatch_indicators{type=phone}"] == 1000  # max, not 2000
    assert m[f"scamwatch_indicator_version{{pid={a}}}"] == 7  # each process seen
    assert m[f"scamwatch_indicator_version{{pid={b}}}"] == 6
    assert m["scamwatch_indicator_store_up{}"] == 0  # one process down: down
    assert m["scamwatch_assigned_partitions{}"] == 8  # summed
    assert m["scamwatch_consumer_lag{partition=0,topic=calls}"] == 0  # b dropped it last

    mark_process_dead(b, str(tmp_path))
    m = merged(tmp_path)
    assert f"scamwatch_indicator_version{{pid={b}}}" not in m
    assert m["scamwatch_indicator_store_up{}"] == 1
    assert m["scamwatch_assigned_partitions{}"] == 3
    assert m["scamwatch_events_total{outcome=matched,stream=calls}"] == 42  # counts stay


def test_one_process_drops_a_revoked_partition_series() -> None:
    m = WorkerMetrics()
    m.consumer_lag.labels("calls", "0").set(5)
    m.drop_lag("calls", "0")
    assert (
        m.registry.get_sample_value("scamwatch_consumer_lag", {"topic": "calls", "partition": "0"})
        is None
    )
