"""The live-updates row of benchmarks/bench_pipeline.py: the worker's rate in the windows with
changes against the windows without around them (synthetic samples, no worker)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
