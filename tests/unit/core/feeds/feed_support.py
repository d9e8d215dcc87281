"""What the feed tests share: the fixture feeds, and reading one into good and bad items."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from engine.core.feeds import FeedItem, SkippedEntry, read_feed
from engine.core.models import Indicator
from engine.errors import FeedError

FEEDS = Path(__file__).resolve().parents[3] / "fixtures" / "feeds"


class SortedItems(NamedTuple):
    good: list[Indicator]
    bad: list[FeedError]
    skipped: list[SkippedEntry]


def sort_items(items: list[FeedItem]) -> SortedItems:
    """Indicators, errors and skipped entries, each in feed order (nothing else allowed)."""
    out = SortedItems(
        [i for i in items if isinstance(i, Indicator)],
        [i for i in items if isinstance(i, FeedError)],
        [i for i in items if isinstance(i, SkippedEntry)],
    )
    assert len(out.good) + len(out.bad) + len(out.skipped) == len(items)
    return out


def split_items(items: list[FeedItem]) -> tuple[list[Indicator], list[FeedError]]:
    """Indicators and errors of a feed that has nothing to skip."""
    good, bad, skipped = sort_items(items)
    assert not skipped, skipped
    return good, bad


def read_fixture(name: str, **kw: object) -> tuple[list[Indicator], list[FeedError]]:
    return split_items(list(read_feed(FEEDS / name, **kw)))  # type: ignore[arg-type]


def read_fixture_all(name: str, **kw: object) -> SortedItems:
    return sort_items(list(read_feed(FEEDS / name, **kw)))  # type: ignore[arg-type]
