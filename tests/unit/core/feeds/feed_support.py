"""What the feed tests share: the fixture feeds, and reading one into good and bad items."""

from __future__ import annotations

from pathlib import Path

from engine.core.feeds import read_feed
from engine.core.models import Indicator
from engine.errors import FeedError

FEEDS = Path(__file__).resolve().parents[3] / "fixtures" / "feeds"


def split_items(items: list[Indicator | FeedError]) -> tuple[list[Indicator], list[FeedError]]:
    good = [i for i in items if isinstance(i, Indicator)]
    bad = [i for i in items if isinstance(i, FeedError)]
    assert len(good) + len(bad) == len(items)
    return good, bad


def read_fixture(name: str, **kw: object) -> tuple[list[Indicator], list[FeedError]]:
    return split_items(list(read_feed(FEEDS / name, **kw)))  # type: ignore[arg-type]
