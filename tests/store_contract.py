"""The behaviour every IndicatorStore must have. Test modules subclass :class:`StoreContract`
and provide a ``make_store`` fixture: a factory ``make_store(change_log_size=..., batch_size=...)``
(the memory store ignores ``batch_size``). Run against MemoryStore and RedisStore alike, so the
two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable

from engine.core.models import Indicator, IndicatorType, Severity
from engine.store.base import IndicatorStore, UpsertResult

T = IndicatorType
MakeStore = Callable[..., IndicatorStore]

PHONE = Indicator(T.PHONE, "+18005550199", ("ftc",), Severity.HIGH, 60, ("microsoft",))
DOMAIN = Indicator(T.DOMAIN, "evil.example", ("feed-a",), Severity.MEDIUM, 40)
URL = Indicator(T.URL, "evil.example/call-now", ("feed-a",))


class StoreContract:
    def test_empty_store(self, make_store: MakeStore) -> None:
        store = make_store()
        assert store.version() == 0
        snap = store.snapshot()
        assert (snap.version, snap.indicators, snap.allowlist) == (0, (), ())
        changes = store.changes_since(0)
        assert changes is not None and changes.changes == () and changes.to_version == 0
        assert store.get(T.PHONE, "+18005550199") is None
        assert list(store.iter()) == []
        assert store.purge_expired(0) == 0

    def test_any_operation_may_come_first(self, make_store: MakeStore) -> None:
        """A new store (whose client may connect at its first use) begins with anything."""
        assert make_store().remove(T.PHONE, PHONE.value) is False
        assert make_store().purge_expired(0) == 0
        assert make_store().get(T.PHONE, PHONE.value) is None
        assert make_store().snapshot().version == 0
        assert make_store().changes_since(0) is not None
        assert make_store().stats(0).version == 0
        assert make_store().upsert([PHONE]) == UpsertResult(added=1)  # last: the rest saw none

    def test_upsert_adds_and_moves_the_version_per_entry(self, make_store: MakeStore) -> None:
        store = make_store()
        result = store.upsert([PHONE, DOMAIN, URL])
        assert result == UpsertResult(added=3, updated=0, unchanged=0)
        assert store.version() == 3
        assert store.get(T.PHONE, PHONE.value) == PHONE
        assert store.get(T.DOMAIN, DOMAIN.value) == DOMAIN
        assert store.get(T.DOMAIN, DOMAIN.value, allowlist=True) is None

    def test_reloading_changes_nothing(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE, DOMAIN])
        version = store.version()
        assert store.upsert([PHONE, DOMAIN]) == UpsertResult(unchanged=2)
        assert store.upsert([Indicator(T.PHONE, PHONE.value, ("ftc",), Severity.LOW, 10)]) == (
            UpsertResult(unchanged=1)  # weaker report from a known source: nothing new
        )
        assert store.version() == version
        changes = store.changes_since(version)
        assert changes is not None and changes.changes == ()

    def test_sources_merge(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE])
        other = Indicator(T.PHONE, PHONE.value, ("partner",), Severity.CRITICAL, 30, ("refund",))
        assert store.upsert([other]) == UpsertResult(updated=1)
        merged = store.get(T.PHONE, PHONE.value)
        assert merged is not None
        assert merged.sources == ("ftc", "partner")
        assert merged.severity is Severity.CRITICAL  # highest severity
        assert merged.confidence == 60  # highest confidence
        assert merged.tags == ("microsoft", "refund")
        assert store.version() == 2

    def test_duplicates_in_one_batch(self, make_store: MakeStore) -> None:
        store = make_store()
        first = Indicator(T.DOMAIN, "dup.example", ("a",))
        second = Indicator(T.DOMAIN, "dup.example", ("b",))
        assert store.upsert([first, second, first]) == UpsertResult(added=1, updated=1, unchanged=1)
        stored = store.get(T.DOMAIN, "dup.example")
        assert stored is not None and stored.sources == ("a", "b")
        assert store.version() == 1  # one entry written once

    def test_unsorted_sources_are_stored_canonically(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([Indicator(T.DOMAIN, "c.example", ("z", "a", "z"), tags=("y", "x"))])
        stored = store.get(T.DOMAIN, "c.example")
        assert stored is not None and stored.sources == ("a", "z") and stored.tags == ("x", "y")
        assert store.upsert([Indicator(T.DOMAIN, "c.example", ("a",))]) == UpsertResult(unchanged=1)

    def test_allowlist_is_kept_apart(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([DOMAIN])
        genuine = Indicator(T.DOMAIN, "evil.example", ("vendor",), Severity.LOW, 100)
        assert store.upsert([genuine], allowlist=True) == UpsertResult(added=1)
        assert store.get(T.DOMAIN, "evil.example") == DOMAIN
        assert store.get(T.DOMAIN, "evil.example", allowlist=True) == genuine
        assert list(store.iter(allowlist=True)) == [genuine]
        assert list(store.iter()) == [DOMAIN]
        snap = store.snapshot()
        assert snap.indicators == (DOMAIN,) and snap.allowlist == (genuine,)
        changes = store.changes_since(1)
        assert changes is not None
        assert [(c.op, c.allowlist, c.indicator) for c in changes.changes] == [
            ("upsert", True, genuine)
        ]

    def test_remove(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE, DOMAIN])
        store.upsert([DOMAIN], allowlist=True)
        assert store.remove(T.DOMAIN, DOMAIN.value) is True
        assert store.version() == 4
        assert store.remove(T.DOMAIN, DOMAIN.value) is False
        assert store.remove(T.KEYWORD, "never-there") is False
        assert store.version() == 4
        assert store.get(T.DOMAIN, DOMAIN.value) is None
        assert store.get(T.DOMAIN, DOMAIN.value, allowlist=True) == DOMAIN  # other side stays
        changes = store.changes_since(3)
        assert changes is not None
        [change] = changes.changes
        assert (change.version, change.op, change.allowlist) == (4, "remove", False)
        assert change.indicator.key == DOMAIN.key

    def test_changes_since_in_order(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE])
        store.upsert([DOMAIN])
        store.remove(T.PHONE, PHONE.value)
        store.upsert([URL], allowlist=True)
        all_changes = store.changes_since(0)
        assert all_changes is not None
        assert (all_changes.from_version, all_changes.to_version) == (0, 4)
        assert [(c.version, c.op, c.allowlist, c.indicator.key) for c in all_changes.changes] == [
            (1, "upsert", False, PHONE.key),
            (2, "upsert", False, DOMAIN.key),
            (3, "remove", False, PHONE.key),
            (4, "upsert", True, URL.key),
        ]
        assert all_changes.changes[1].indicator == DOMAIN  # upserts carry the whole entry
        tail = store.changes_since(2)
        assert tail is not None and [c.version for c in tail.changes] == [3, 4]

    def test_changes_since_none_when_the_log_is_trimmed(self, make_store: MakeStore) -> None:
        store = make_store(change_log_size=3)
        store.upsert([Indicator(T.DOMAIN, f"d{i}.example") for i in range(5)])
        assert store.version() == 5
        assert store.changes_since(0) is None
        assert store.changes_since(1) is None
        kept = store.changes_since(2)
        assert kept is not None and [c.version for c in kept.changes] == [3, 4, 5]
        assert store.changes_since(6) is None  # ahead of the store: it was reset, reload

    def test_purge_expired(self, make_store: MakeStore) -> None:
        store = make_store()
        now = 1_800_000_000_000
        expired = Indicator(T.DOMAIN, "old.example", ("a",), valid_until=now - 1)
        current = Indicator(T.DOMAIN, "new.example", ("a",), valid_until=now + 60_000)
        future = Indicator(T.DOMAIN, "soon.example", ("a",), valid_from=now + 60_000)
        old_allowed = Indicator(T.PHONE, "+18006427676", ("v",), valid_until=now - 5)
        store.upsert([expired, current, future])
        store.upsert([old_allowed], allowlist=True)
        assert store.stats(now).expired == 2
        version = store.version()
        assert store.purge_expired(now) == 2
        assert store.version() == version + 2
        assert {i.value for i in store.iter()} == {"new.example", "soon.example"}
        assert list(store.iter(allowlist=True)) == []
        assert store.purge_expired(now) == 0
        assert store.stats(now).expired == 0
        changes = store.changes_since(version)
        assert changes is not None and {c.op for c in changes.changes} == {"remove"}

    def test_stats(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE, DOMAIN, URL, Indicator(T.DOMAIN, "x.example", ("ftc", "feed-a"))])
        store.upsert([Indicator(T.DOMAIN, "microsoft.com", ("vendor",))], allowlist=True)
        stats = store.stats(0)
        assert stats.version == 5
        assert stats.by_type == {"phone": 1, "domain": 2, "url": 1}
        assert stats.by_source == {"ftc": 2, "feed-a": 3}
        assert stats.allowlist_by_type == {"domain": 1}
        assert stats.expired == 0

    def test_iter_filters(self, make_store: MakeStore) -> None:
        store = make_store()
        store.upsert([PHONE, DOMAIN, URL])
        assert {i.key for i in store.iter(type_=T.DOMAIN)} == {DOMAIN.key}
        assert {i.key for i in store.iter(source="feed-a")} == {DOMAIN.key, URL.key}
        assert list(store.iter(type_=T.PHONE, source="feed-a")) == []

    def test_bulk_load_across_batches(self, make_store: MakeStore) -> None:
        store = make_store(batch_size=100)
        items = [Indicator(T.PHONE, f"+1800555{i:04d}", ("bulk",)) for i in range(450)]
        assert store.upsert(iter(items)) == UpsertResult(added=450)
        assert store.version() == 450
        snap = store.snapshot()
        assert snap.version == 450
        assert sorted(snap.indicators, key=lambda i: i.value) == items
        assert store.upsert(items) == UpsertResult(unchanged=450)
        assert store.version() == 450
