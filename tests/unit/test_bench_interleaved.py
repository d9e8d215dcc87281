"""The pure parts of benchmarks/bench_pipeline.py (no worker): the live-updates row (the
worker's rate in the windows with changes against the windows without around them, on
synthetic samples), the targets it judges, the population rows' subscribers, the alerts
that expose the pool's subscribers, and the latency CDF kept in the results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from engine.core.journey import ExposureTable
from engine.devtools.schemas import validate

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pipeline.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pipeline", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_pipeline"] = module
    spec.loader.exec_module(module)
    return module


def run(bench: ModuleType, rate_off: float, rate_on: float, windows: int, window: float) -> list:
    """Samples every 0.25 s of a worker doing ``rate_off`` events/s, ``rate_on`` in the odd
    windows; the phases as IndicatorChanger records them."""
    samples, count, t = [], 0.0, 0.0
    while t <= windows * window:
        samples.append(bench.Sample(t, count, 0.0))
        on = int(t / window) % 2 == 1
        count += (rate_on if on else rate_off) * 0.25
        t += 0.25
    phases = [(i * window, i % 2 == 1) for i in range(windows)]
    return [samples, phases, count]


def test_the_windows_with_changes_are_held_against_those_around_them(bench: ModuleType) -> None:
    samples, phases, total = run(bench, 10_000, 8_000, windows=12, window=3.0)
    got = bench.interleaved(samples, phases, total, 3.0)
    assert got is not None
    assert got["windows_on"] >= 3 and got["windows_off"] >= 3
    assert got["median_ratio"] == pytest.approx(0.8, abs=0.01)
    assert got["on_per_s"] == pytest.approx(8_000, rel=0.01)
    assert got["off_per_s"] == pytest.approx(10_000, rel=0.01)


def test_no_difference_reads_as_one(bench: ModuleType) -> None:
    samples, phases, total = run(bench, 9_000, 9_000, windows=10, window=2.0)
    got = bench.interleaved(samples, phases, total, 2.0)
    assert got is not None and got["median_ratio"] == pytest.approx(1.0, abs=0.01)


def test_too_short_a_run_says_so(bench: ModuleType) -> None:
    samples, phases, total = run(bench, 9_000, 9_000, windows=1, window=3.0)
    assert bench.interleaved(samples, phases, total, 3.0) is None


def test_the_targets_are_judged_on_the_rows_run(bench: ModuleType) -> None:
    def row(rate: float, **more: object) -> dict[str, object]:
        return {"steady_per_s": rate, **more}

    paths = {
        "pass_through": row(1000.0),
        "inline": row(400.0, latency={"p99_ms": 80.0, "offered_per_s": 200.0}),
        "processes_2": row(640.0, latency={"p99_ms": 120.0, "offered_per_s": 200.0}),
        "stateful_off": row(500.0),
        "stateful_on": row(460.0),
        "stateful_off_population": row(500.0),
        "stateful_on_population": row(440.0),
    }
    judged = {t["target"]: (t["measured"], t["ok"]) for t in bench.judge(paths)}
    assert judged == {
        "inline ≥ 50% of the pass-through": ("40%", False),
        "inline: p99 ≤ 100 ms at half capacity": ("80 ms at 200/s", True),
        "--processes 2: p99 ≤ 100 ms at half capacity": ("120 ms at 200/s", False),
        "stateful side on ≥ 90% of off": ("92%", True),
        "stateful side on, subscribers drawn from a population, ≥ 90% of off": ("88%", False),
        "--processes 2 ≥ 1.5× one process": ("1.60×", True),
    }


def test_the_latency_with_a_hunt_is_judged_only_when_the_hunt_read(bench: ModuleType) -> None:
    """A hunt_running row whose hunt read nothing while its latency was measured is the
    inline row again: it must not pass for the latency with a hunt running."""
    latency = {"p99_ms": 60.0, "offered_per_s": 200.0}
    hunting = {"events_during": 15_000.0, "per_s_during": 1_000.0}
    target = "inline with an automatic hunt running: p99 ≤ 100 ms at half capacity"
    busy = {"hunt_running": {"steady_per_s": 400.0, "latency": latency, "hunt": hunting}}
    assert {t["target"]: t["measured"] for t in bench.judge(busy)} == {
        target: "60 ms at 200/s (hunting 1,000/s)"
    }
    idle = {"hunt_running": {**busy["hunt_running"], "hunt": {**hunting, "events_during": 0.0}}}
    assert bench.judge(idle) == []


def test_population_rows_get_subscribers_drawn_from_the_population(bench: ModuleType) -> None:
    line = b'{"event_id":"e1","ts":1,"partner_id":"p1","subscriber_id":"s1","callee":"+1"}'
    anonymous = b'{"event_id":"e2","ts":1,"partner_id":"p1","subscriber_id":null}'
    drawn = bench.Population(1_000_000, seed=1)
    events = [orjson.loads(v) for v, _ in bench.events_for([line, anonymous], 400, "t", drawn)]
    subscribers = [e["subscriber_id"] for e in events]
    assert subscribers[1::2] == [None] * 200  # an event without a subscriber stays so
    assert all(s.startswith("pop-") for s in subscribers[::2])
    assert len(set(subscribers[::2])) > 190  # a million to draw from: nearly all distinct
    assert all(e["ts"] > 1 for e in events)  # dated when made

    # seeded: each run draws the same subscribers; another seed, others
    def first(seed: int) -> list[str]:
        population = bench.Population(1_000_000, seed)
        return [population.draw() for _ in range(5)]

    assert first(1) == first(1) != first(2)


def test_stateful_rows_start_with_every_pool_subscriber_exposed(bench: ModuleType) -> None:
    pool = [
        b'{"event_id":"e1","partner_id":"p1","subscriber_id":"s1"}',
        b'{"event_id":"e2","partner_id":"p1","subscriber_id":"s1"}',  # the same one again
        b'{"event_id":"e3","partner_id":"p2","subscriber_id":"s1"}',  # another partner's
        b'{"event_id":"e4","partner_id":"p1","subscriber_id":null}',
        b"not json",
    ]
    at = 1_764_000_000_000
    alerts = [value for value, _ in bench.exposing_alerts([pool], at)]
    assert len(alerts) == 2
    table = ExposureTable(1_800_000)
    for value in alerts:
        validate("alert.v1", orjson.loads(value))
        assert table.add_json(value, at) is not None
    for partner in ("p1", "p2"):
        found = table.find(partner, "s1", at + 1_000)
        assert found is not None and found.exposed_at_ms == at


def test_the_latency_cdf_is_kept_in_at_most_a_thousand_points(bench: ModuleType) -> None:
    values = [float(v) for v in range(5000, 0, -1)]
    points = bench.cdf_points(values)
    assert len(points) == bench.CDF_POINTS
    assert points == sorted(points)
    assert points[0] == 1.0 and points[-1] == 5000.0  # the minimum and the maximum
    assert bench.cdf_points([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]  # few: all of them


def test_a_running_hunts_alerts_are_told_from_the_backlog(bench: ModuleType) -> None:
    """The latency run reads its output topic's earlier records until none came for 1.5 s; a
    hunt running in the worker keeps writing retro alerts, which must not keep it waiting."""
    assert bench.is_retro(orjson.dumps({"rule": "callee_scam_number", "retro": True}))
    assert not bench.is_retro(orjson.dumps({"rule": "callee_scam_number"}))
    assert not bench.is_retro(orjson.dumps({"rule": "callee_scam_number", "retro": False}))
    assert not bench.is_retro(b"not json")
