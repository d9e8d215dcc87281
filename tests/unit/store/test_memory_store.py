"""MemoryStore: the store contract, plus what only the in-memory store promises."""

from __future__ import annotations

import threading

import pytest

from engine.core.models import Indicator, IndicatorType
from engine.store.memory import MemoryStore
from engine.store.merging import plan_upsert
from tests.store_contract import MakeStore, StoreContract


@pytest.fixture
def make_store() -> MakeStore:
    def make(change_log_size: int = 100_000, batch_size: int | None = None) -> MemoryStore:
        return MemoryStore(change_log_size=change_log_size)

    return make


class TestMemoryStoreContract(StoreContract):
    pass


def test_snapshot_is_not_changed_by_later_writes() -> None:
    store = MemoryStore()
    store.upsert([Indicator(IndicatorType.DOMAIN, "a.example")])
    snap = store.snapshot()
    store.upsert([Indicator(IndicatorType.DOMAIN, "b.example")])
    assert snap.version == 1 and [i.value for i in snap.indicators] == ["a.example"]


def test_change_log_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="change_log_size"):
        MemoryStore(change_log_size=0)


def test_concurrent_writers_lose_nothing() -> None:
    store = MemoryStore()

    def write(source: str) -> None:
        for i in range(200):
            store.upsert([Indicator(IndicatorType.PHONE, f"+1800555{i:04d}", (source,))])

    threads = [threading.Thread(target=write, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    entries = list(store.iter())
    assert len(entries) == 200
    assert all(e.sources == ("s0", "s1", "s2", "s3") for e in entries)
    assert store.version() == 800  # each source changed each entry once
    snap = store.snapshot()
    assert snap.version == store.version()


def test_plan_upsert_counts_every_incoming_indicator() -> None:
    a = Indicator(IndicatorType.DOMAIN, "a.example", ("x",))
    a2 = Indicator(IndicatorType.DOMAIN, "a.example", ("y",))
    b = Indicator(IndicatorType.DOMAIN, "b.example", ("x",))
    plan = plan_upsert([a, a2, a2, b], {b.key: b})
    assert (plan.added, plan.updated, plan.unchanged) == (1, 1, 2)
    assert list(plan.writes) == [a.key]
    assert plan.writes[a.key].sources == ("x", "y")
