"""The follower keeps the built matcher out of the garbage collector's walks (frozen after
each swap), and still frees what it retires: the old matcher at once, frozen-in cyclic
garbage at the next full pass."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType
from engine.metrics import WorkerMetrics
from engine.store.memory import MemoryStore
from engine.stream.follower import FrozenHeap, IndicatorFollower


class TrackedMatcher(Matcher):
    """A matcher a test can hold a weak reference to."""

    __slots__ = ("__weakref__",)


def build_tracked(snapshot: IndicatorSnapshot, region: str) -> Matcher:
    return TrackedMatcher(snapshot, region)


class Node:
    """A reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process as it was


def store_with(n: int, change_log_size: int = 100_000) -> MemoryStore:
    store = MemoryStore(change_log_size)
    store.upsert(
        [Indicator(IndicatorType.PHONE, f"+1800555{i:04d}", sources=("f",)) for i in range(n)]
    )
    return store


def in_collected_generations(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


async def test_a_swap_freezes_the_new_matcher() -> None:
    gc.unfreeze()
    follower = IndicatorFollower(store_with(50), metrics=WorkerMetrics())
    before = gc.get_freeze_count()
    assert in_collected_generations(follower.matcher)
    await follower.load(1)
    assert gc.get_freeze_count() > before
    # the permanent generation holds it: no collection walks it any more
    assert not in_collected_generations(follower.matcher)


async def test_the_retired_matcher_is_freed_at_the_swap() -> None:
    store = store_with(50, change_log_size=1)
    follower = IndicatorFollower(store, metrics=WorkerMetrics(), build=build_tracked)
    await follower.load(1)
    first = weakref.ref(follower.matcher)
    for i in range(2):  # past the change log: a full build and swap, not an update
        store.upsert([Indicator(IndicatorType.PHONE, f"+1888555{i:04d}", sources=("f",))])
    assert await follower.poll_once()
    assert follower.matcher is not first()
    # no gc.collect() here: freezing must not keep it, its reference count frees it
    assert first() is None
    await follower.poll_once()
    assert first() is None


async def test_an_in_place_update_keeps_the_matcher_and_what_it_added_frozen() -> None:
    gc.unfreeze()
    store = store_with(50)
    follower = IndicatorFollower(store, metrics=WorkerMetrics())
    await follower.load(1)
    matcher = follower.matcher
    added = Indicator(IndicatorType.PHONE, "+18885550123", sources=("f", "g"))
    store.upsert([added])
    assert await follower.poll_once()
    assert follower.matcher is matcher
    assert gc.isenabled()  # an update never leaves the collector off
    held = matcher._phones["+18885550123"]
    assert held == added
    # neither the matcher nor the indicator the update put in it is walked by collections
    assert not in_collected_generations(matcher)
    assert not in_collected_generations(held)


def test_cyclic_garbage_frozen_in_is_freed_by_the_full_pass() -> None:
    heap = FrozenHeap(compact_growth=1.5)
    heap.after_swap()  # the first swap: a full pass
    assert heap.full_passes == 1
    cycle = Node()
    dead = weakref.ref(cycle)
    gc.freeze()  # as if a swap had frozen it while still alive ...
    del cycle  # ... and it became garbage later: no collection sees it now
    gc.collect()
    assert dead() is not None
    heap.after_swap()  # frozen generation not grown enough: no full pass
    assert heap.full_passes == 1
    assert dead() is not None
    grown = [[] for _ in range(gc.get_freeze_count())]  # the live set doubles
    heap.after_swap()
    assert heap.full_passes == 2
    assert dead() is None
    assert not in_collected_generations(grown)


def test_an_update_does_not_walk_the_frozen_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc.get_freeze_count() walks every frozen object (~50 ms per 4M): after each in-place
    update it cost the worker more than the update. Between recounts, growth is counted from
    what each freeze adds."""
    heap = FrozenHeap(compact_growth=1000.0)
    heap.after_swap()  # the first swap: a full pass, counted exactly
    walks: list[int] = []
    real = gc.get_freeze_count

    def counting() -> int:
        walks.append(1)
        return real()

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    for _ in range(5):
        heap.after_swap()
    assert walks == []
    assert heap.full_passes == 1
    exact = FrozenHeap(compact_growth=1000.0, recount_seconds=0.0)
    exact.after_swap()
    walks.clear()
    exact.after_swap()
    assert walks == [1]  # a recount is due each time: counted exactly


async def test_a_disabled_heap_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    heap = FrozenHeap(enabled=False)
    with heap.building():
        assert gc.isenabled()
    follower = IndicatorFollower(store_with(50), metrics=WorkerMetrics(), heap=heap)
    await follower.load(1)
    assert gc.get_freeze_count() == 0
    assert in_collected_generations(follower.matcher)
    assert heap.full_passes == 0
