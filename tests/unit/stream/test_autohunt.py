"""The pure parts of the automatic retro-hunt: the token bucket, what a partition is hunted
for and up to where, merging versions, and the hunter's bookkeeping on versions, assignments
and revocations (no Kafka: nothing here starts a hunt)."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest

from engine.core.models import Change, Indicator, IndicatorType, Stream
from engine.metrics import WorkerMetrics
from engine.settings import load_settings
from engine.store.memory import MemoryStore
from engine.stream.autohunt import (
    MAX_STEPS,
    AutoHunter,
    MemoryHuntLedger,
    PartitionRequest,
    TokenBucket,
    indicators_to_hunt,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_holds_the_rate_over_time() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=100, clock=clock)
    assert bucket.spend(100) == 0.0  # the burst is there at once
    wait = bucket.spend(100)
    assert wait == pytest.approx(0.1)  # 100 more tokens take 0.1 s
    clock.now += wait
    assert bucket.spend(0) == pytest.approx(0.0, abs=1e-9)
    clock.now += 10  # idle: the balance is capped at the burst, not 10 s worth
    assert bucket.spend(100) == 0.0
    assert bucket.spend(1) == pytest.approx(0.001)


def _phone(value: str) -> Indicator:
    return Indicator(type=IndicatorType.PHONE, value=value, sources=("t",))


def _upsert(version: int, value: str, allowlist: bool = False) -> Change:
    return Change(version, "upsert", allowlist, _phone(value))


def test_each_indicator_is_hunted_up_to_the_boundary_of_the_version_that_brought_it() -> None:
    request = PartitionRequest(10)
    request.add(12, 500)  # v11..v12 in use when the next live record was at offset 500
    request.add(13, None)  # nothing handled since the assignment: the committed offset
    changes = [
        _upsert(11, "+18005550001"),
        _upsert(12, "+18005550002"),
        _upsert(13, "+18005550003"),
        _upsert(13, "+18005550004", allowlist=True),  # allowlist: not hunted
        _upsert(9, "+18005550009"),  # before the request
        _upsert(14, "+18005550014"),  # after it: the next version's
    ]
    plan = indicators_to_hunt(request, changes, committed=420)
    assert {k: end for k, (_, end) in plan.items()} == {
        ("phone", "+18005550001"): 500,
        ("phone", "+18005550002"): 500,
        ("phone", "+18005550003"): 420,
    }


def test_a_removed_indicator_is_not_hunted_and_a_re_added_one_up_to_its_last_upsert() -> None:
    request = PartitionRequest(0)
    request.add(1, 100)
    request.add(2, 200)
    request.add(3, 300)
    changes = [
        _upsert(1, "+18005550001"),
        Change(2, "remove", False, _phone("+18005550001")),
        _upsert(1, "+18005550002"),
        Change(2, "remove", False, _phone("+18005550002")),
        _upsert(3, "+18005550002"),
    ]
    plan = indicators_to_hunt(request, changes, committed=0)
    assert {k: end for k, (_, end) in plan.items()} == {("phone", "+18005550002"): 300}


def test_merging_versions_is_bounded_and_folds_to_the_later_boundary() -> None:
    request = PartitionRequest(0)
    for v in range(1, MAX_STEPS + 10):
        request.add(v, v * 10)
    assert len(request.steps) == MAX_STEPS
    assert request.to_version == MAX_STEPS + 9
    # the oldest versions now share a later boundary (repeats, never a loss)
    assert request.boundary_of(1) == request.boundary_of(10) == 100
    request.add(5, 1)  # a version not after the last: ignored
    assert request.to_version == MAX_STEPS + 9


class TP(NamedTuple):
    topic: str
    partition: int


def _hunter(handled: dict[tuple[str, int], int], version: list[int]) -> Any:
    settings = load_settings(worker={"retrohunt_seconds": 3600})
    return AutoHunter(
        settings,
        store=MemoryStore(),
        ledger=MemoryHuntLedger(),
        metrics=WorkerMetrics(),
        last_handled=lambda t, p: handled.get((t, p)),
        version=lambda: version[0],
        topics={"calls": Stream.CALLS},
    )


def test_hunter_requests_boundaries_on_a_new_version_and_drops_revoked_partitions() -> None:
    async def go() -> None:
        handled = {("calls", 0): 41}
        version = [5]
        hunter = _hunter(handled, version)
        hunter.assigned([TP("calls", 0), TP("calls", 1), TP("other", 0)])
        assert hunter.owned == {("calls", 0), ("calls", 1)}
        for _ in range(50):  # the ledger is read off the loop
            await asyncio.sleep(0.01)
            if len(hunter.hunted) == 2:
                break
        # never hunted: marked with the version in use, nothing to hunt
        assert hunter.hunted == {("calls", 0): 5, ("calls", 1): 5}
        assert hunter._ledger.versions == {("calls", 0): 5, ("calls", 1): 5}
        assert hunter.pending == {}

        version[0] = 7
        hunter.on_version(7)
        assert hunter.pending[("calls", 0)].steps == [(7, 42)]  # one after the last handled
        assert hunter.pending[("calls", 1)].steps == [(7, None)]  # none handled: committed
        handled[("calls", 0)] = 60
        hunter.on_version(8)  # merged into the pending hunt
        assert hunter.pending[("calls", 0)].steps == [(7, 42), (8, 61)]
        assert hunter.pending[("calls", 0)].from_version == 5

        hunter.revoked([TP("calls", 0), TP("calls", 1)])
        hunter.assigned([TP("calls", 1)])  # calls[0] went to another worker
        assert ("calls", 0) not in hunter.pending
        assert ("calls", 0) not in hunter.hunted
        assert hunter.pending[("calls", 1)].steps == [(8, None)]
        await hunter.close()

    asyncio.run(go())


def test_a_partition_hunted_through_an_older_version_is_hunted_by_its_new_owner() -> None:
    async def go() -> None:
        hunter = _hunter({}, [9])
        hunter._ledger.versions[("calls", 3)] = 6  # its former owner got to v6
        hunter.assigned([TP("calls", 3)])
        for _ in range(50):
            await asyncio.sleep(0.01)
            if hunter.pending:
                break
        request = hunter.pending[("calls", 3)]
        assert (request.from_version, request.steps) == (6, [(9, None)])
        await hunter.close()

    asyncio.run(go())


def test_an_outage_is_said_once_and_its_end_once_a_bug_is_logged_whole(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aiokafka.errors import KafkaConnectionError

    import engine.stream.autohunt as autohunt

    monkeypatch.setattr(autohunt, "RETRY_SECONDS", 0.01)
    failures: list[BaseException] = [
        KafkaConnectionError("broker down"),
        KafkaConnectionError("broker down"),
        KafkaConnectionError("broker down"),
        ValueError("a bug"),
    ]
    calls: list[set[Any]] = []

    async def go() -> None:
        hunter = _hunter({}, [5])
        hunter.owned = {("calls", 0)}

        async def hunt(work: dict[Any, PartitionRequest]) -> None:
            calls.append(set(work))
            if failures:
                raise failures.pop(0)

        monkeypatch.setattr(hunter, "_hunt", hunt)
        hunter.pending[("calls", 0)] = PartitionRequest(4, [(5, 42)])
        hunter._wake.set()
        task = asyncio.create_task(hunter.run())
        for _ in range(500):
            await asyncio.sleep(0.01)
            if len(calls) == 5:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level("INFO", logger="engine.stream.autohunt"):
        asyncio.run(go())
    assert calls == [{("calls", 0)}] * 5  # retried each time, the same partition
    paused = [r for r in caplog.records if "automatic hunt paused" in r.getMessage()]
    assert len(paused) == 1 and paused[0].exc_info is None  # three failures, one warning
    bug = [r for r in caplog.records if "automatic hunt failed" in r.getMessage()]
    assert len(bug) == 1 and bug[0].exc_info is not None  # the fourth: logged whole
    resumed = [r for r in caplog.records if "automatic hunt resumed" in r.getMessage()]
    assert len(resumed) == 1  # the fifth worked
    assert caplog.records.index(resumed[0]) > caplog.records.index(bug[0])
