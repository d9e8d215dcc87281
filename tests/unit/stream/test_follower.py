"""The indicator follower on the in-memory store: load, follow changes, swap, outages."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
import pytest

from engine.core.matcher import Matcher
from engine.core.models import (
    ChangeSet,
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    SourcePosition,
    Stream,
)
from engine.core.processor import RecordProcessor
from engine.errors import StoreUnavailable
from engine.metrics import WorkerMetrics
from engine.store.base import UpsertResult
from engine.store.memory import MemoryStore
from engine.stream.follower import IndicatorFollower

SCAM = Indicator(IndicatorType.PHONE, "+18005550199", sources=("feed",))
OTHER = Indicator(IndicatorType.PHONE, "+18885550123", sources=("feed",))


class FlakyStore(MemoryStore):
    """A memory store that can be switched off, as Redis going away looks to the worker."""

    def __init__(self, change_log_size: int = 100_000) -> None:
        super().__init__(change_log_size)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")

    def version(self) -> int:
        self._check()
        return super().version()

    def snapshot(self) -> IndicatorSnapshot:
        self._check()
        return super().snapshot()

    def changes_since(self, version: int) -> ChangeSet | None:
        self._check()
        return super().changes_since(version)

    def upsert(self, indicators: Iterable[Indicator], *, allowlist: bool = False) -> UpsertResult:
        return super().upsert(indicators, allowlist=allowlist)


def matches(follower: IndicatorFollower, callee: str) -> bool:
    proc = RecordProcessor(matcher=follower.current, alerts_topic="a", deadletter_topic="d")
    raw = orjson.dumps(
        {
            "event_id": "e",
            "ts": 1_764_000_000_000,
            "partner_id": "p",
            "caller": "x",
            "callee": callee,
        }
    )
    return proc.process(Stream.CALLS, raw, None, SourcePosition("t", 0, 0)).kind == "matched"


def gauge(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    assert value is not None, name
    return value


async def test_load_then_follow_additions_and_removals() -> None:
    store = FlakyStore()
    store.upsert([SCAM])
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert await follower.load(wait_seconds=1)
    assert follower.version == 1
    assert matches(follower, "+1 800 555 0199")
    assert not matches(follower, "+1 888 555 0123")
    assert gauge(metrics, "scamwatch_indicators", type="phone") == 1

    assert not await follower.poll_once()  # nothing changed: no rebuild
    store.upsert([OTHER])
    before = follower.current()
    assert await follower.poll_once()
    assert follower.current() is before  # updated in place, not rebuilt
    assert matches(follower, "+1 888 555 0123")
    assert gauge(metrics, "scamwatch_indicator_version") == 2
    assert gauge(metrics, "scamwatch_indicators", type="phone") == 2

    store.remove(IndicatorType.PHONE, "+18005550199")
    assert await follower.poll_once()
    assert not matches(follower, "+1 800 555 0199")
    assert matches(follower, "+1 888 555 0123")
    assert gauge(metrics, "scamwatch_matcher_swaps_total") == 3
    assert gauge(metrics, "scamwatch_snapshot_reloads_total") == 1
    assert gauge(metrics, "scamwatch_indicators", type="phone") == 1
    assert gauge(metrics, "scamwatch_matcher_changes_applied_total") == 2
    assert gauge(metrics, "scamwatch_matcher_update_seconds_count") == 2
    assert gauge(metrics, "scamwatch_matcher_build_seconds_count") == 1  # the load only


async def test_change_log_no_longer_reaching_back_reloads_the_snapshot() -> None:
    store = FlakyStore(change_log_size=1)
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert await follower.load(wait_seconds=1)
    store.upsert([SCAM])
    store.upsert([OTHER])  # the log now holds only the last change
    assert await follower.poll_once()
    assert matches(follower, "+18005550199") and matches(follower, "+18885550123")
    assert gauge(metrics, "scamwatch_snapshot_reloads_total") == 2


async def test_outage_keeps_the_last_matcher_warns_once_and_resyncs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    store.upsert([SCAM])
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert await follower.load(wait_seconds=1)
    assert gauge(metrics, "scamwatch_indicator_store_up") == 1

    store.down = True
    with caplog.at_level(logging.WARNING, logger="engine.stream.follower"):
        for _ in range(5):
            assert not await follower.poll_once()
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert gauge(metrics, "scamwatch_indicator_store_up") == 0
    assert matches(follower, "+18005550199")  # still matching on the last snapshot

    store.upsert([OTHER])  # written while the worker could not see the store
    store.down = False
    assert await follower.poll_once()
    assert gauge(metrics, "scamwatch_indicator_store_up") == 1
    assert matches(follower, "+18885550123")


async def test_store_down_at_start_starts_empty_and_loads_when_it_answers() -> None:
    store = FlakyStore()
    store.upsert([SCAM])
    store.down = True
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert not await follower.load(wait_seconds=0.3)
    assert follower.version is None
    assert not matches(follower, "+18005550199")
    store.down = False
    assert await follower.poll_once()
    assert matches(follower, "+18005550199")


async def test_changes_arriving_together_are_applied_as_one_batch() -> None:
    store = FlakyStore()
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert await follower.load(wait_seconds=1)
    store.upsert([SCAM])
    store.upsert([OTHER])
    store.upsert([Indicator(IndicatorType.DOMAIN, "evil.com")], allowlist=True)
    assert await follower.poll_once()
    assert follower.version == 3
    assert matches(follower, "+18005550199") and matches(follower, "+18885550123")
    assert gauge(metrics, "scamwatch_matcher_changes_applied_total") == 3
    assert gauge(metrics, "scamwatch_matcher_update_seconds_count") == 1
    assert gauge(metrics, "scamwatch_indicators", type="phone") == 2


async def test_a_failing_update_reloads_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FlakyStore()
    metrics = WorkerMetrics()
    follower = IndicatorFollower(store, metrics=metrics)
    assert await follower.load(wait_seconds=1)
    first = follower.current()

    def broken(self: Matcher, prepared: object, at_ms: int | None = None) -> None:
        raise RuntimeError("a bug half way through")

    monkeypatch.setattr(Matcher, "apply", broken)
    store.upsert([SCAM])
    assert await follower.poll_once()
    assert follower.current() is not first  # the possibly half-updated matcher is retired
    assert matches(follower, "+18005550199")
    assert gauge(metrics, "scamwatch_snapshot_reloads_total") == 2


async def test_a_failing_build_keeps_the_current_matcher() -> None:
    store = FlakyStore(change_log_size=1)  # so that the follower rebuilds on a change
    store.upsert([SCAM])
    calls = {"n": 0}

    def build(snapshot: IndicatorSnapshot, region: str) -> Matcher:
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("no room")
        return Matcher.build(snapshot, default_region=region)

    follower = IndicatorFollower(store, metrics=WorkerMetrics(), build=build)
    assert await follower.load(wait_seconds=1)
    store.upsert([OTHER])
    # the log no longer reaches back: a reload, a build
    store.upsert([Indicator(IndicatorType.PHONE, "+18885550124", sources=("feed",))])
    assert not await follower.poll_once()  # the build failed
    assert matches(follower, "+18005550199") and not matches(follower, "+18885550123")
    assert await follower.poll_once()  # next poll tries again
    assert matches(follower, "+18885550123")


async def test_listeners_hear_each_version_put_in_use_once_it_matches() -> None:
    store = FlakyStore(change_log_size=1)
    follower = IndicatorFollower(store, metrics=WorkerMetrics())
    heard: list[tuple[int, bool]] = []
    # what the automatic hunt relies on: told after the matcher holds the version
    follower.listeners.append(lambda v: heard.append((v, matches(follower, "+18885550123"))))
    assert await follower.load(wait_seconds=1)
    assert heard == []  # the first load is no change
    store.upsert([SCAM])
    assert await follower.poll_once()  # in place
    store.upsert([OTHER])
    store.upsert([Indicator(IndicatorType.PHONE, "+18885550999", sources=("feed",))])
    assert await follower.poll_once()  # the log no longer reaches back: a reload
    assert heard == [(1, False), (3, True)]
