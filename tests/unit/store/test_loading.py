"""Feed → store loading: batches, counts by type, the strict rule, progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.models import Indicator, IndicatorType
from engine.errors import FeedError
from engine.store import loading
from engine.store.base import UpsertResult
from engine.store.loading import load_feed, load_items
from engine.store.memory import MemoryStore

T = IndicatorType


def _feed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "type,value,source\n"
        "phone,+1 (800) 555-0199,ftc\n"
        "domain,Evil-Support.example.,feed\n"
        "phone,not a number,ftc\n"
        "domain,evil-support.example,other\n"
        "keyword,microsoft-support,feed\n",
        encoding="utf-8",
    )
    return path


def test_load_feed_counts_valid_by_type_and_store_outcomes(tmp_path: Path) -> None:
    store = MemoryStore()
    report = load_feed(_feed(tmp_path), store)
    assert report.items == 5
    assert report.by_type == {T.PHONE: 1, T.DOMAIN: 2, T.KEYWORD: 1}
    assert (report.valid, report.invalid) == (4, 1)
    assert "mixed.csv:4" in str(report.errors[0])  # file and line of the bad one
    # the second domain line is the same indicator from another source: one entry, updated
    assert report.result == UpsertResult(added=3, updated=1, unchanged=0)
    entry = store.get(T.DOMAIN, "evil-support.example")
    assert entry is not None and entry.sources == ("feed", "other")
    again = load_feed(_feed(tmp_path), store)
    assert again.result == UpsertResult(unchanged=4)


def test_strict_writes_nothing_when_any_line_is_bad(tmp_path: Path) -> None:
    store = MemoryStore()
    report = load_feed(_feed(tmp_path), store, strict=True)
    assert not report.written
    assert report.invalid == 1
    assert store.version() == 0 and list(store.iter()) == []


def test_strict_loads_a_clean_feed_into_the_allowlist(tmp_path: Path) -> None:
    path = tmp_path / "genuine.txt"
    path.write_text("microsoft.com\namazon.com\n", encoding="utf-8")
    store = MemoryStore()
    report = load_feed(path, store, type_=T.DOMAIN, allowlist=True, strict=True)
    assert report.written and report.result == UpsertResult(added=2)
    assert {i.value for i in store.iter(allowlist=True)} == {"microsoft.com", "amazon.com"}
    assert list(store.iter()) == []


def test_batches_and_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "LOAD_BATCH", 7)
    monkeypatch.setattr(loading, "PROGRESS_STEP", 10)
    calls: list[int] = []

    class CountingStore(MemoryStore):
        def upsert(self, indicators, *, allowlist=False):  # type: ignore[no-untyped-def]
            batch = list(indicators)
            calls.append(len(batch))
            return super().upsert(batch, allowlist=allowlist)

    items: list[Indicator | FeedError] = [
        Indicator(T.PHONE, f"+1800555{i:04d}", ("synthetic",)) for i in range(30)
    ]
    items.insert(5, FeedError("bad line"))
    progress: list[int] = []
    store = CountingStore()
    report = load_items(items, store, on_progress=progress.append)
    assert calls == [7, 7, 7, 7, 2]  # bounded batches, the rest at the end
    assert progress == [10, 10, 10]  # 31 items read
    assert report.result == UpsertResult(added=30)
    assert report.items == 31 and report.invalid == 1


def test_skipped_entries_are_reported_and_do_not_fail_strict() -> None:
    """A STIX observable scamwatch does not match (a file hash) is counted as skipped."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "feeds" / "stix_bundle.json"
    store = MemoryStore()
    report = load_feed(fixture, store)
    assert len(report.skipped) == 3
    assert report.valid == sum(1 for _ in store.iter()) > 0
    clean = [*report.skipped, *store.iter()]
    strict = load_items(clean, MemoryStore(), strict=True)
    assert strict.written and len(strict.skipped) == 3
