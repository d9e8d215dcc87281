"""read_feed and guess_format: every format told apart, the bundled sample feeds all load."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.feeds import (
    FORMATS,
    guess_format,
    read_feed,
)
from engine.core.models import Indicator
from engine.devtools.samples import sample_feeds
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import FEEDS, split_items


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("indicators.csv", "csv"),
        ("domains.txt", "txt"),
        ("indicators.jsonl", "jsonl"),
        ("stix_bundle.json", "stix"),
        ("misp_event.json", "misp"),
    ],
)
def test_guess_format_of_every_fixture(name: str, expected: str) -> None:
    assert guess_format(FEEDS / name) == expected
    assert expected in FORMATS


def test_guess_format_refuses_what_it_cannot_tell(tmp_path: Path) -> None:
    odd = tmp_path / "feed.xml"
    odd.write_text("<x/>")
    with pytest.raises(FeedError, match="extension"):
        guess_format(odd)
    plain = tmp_path / "feed.json"
    plain.write_text('{"hello": 1}')
    with pytest.raises(FeedError, match="neither a STIX bundle nor a MISP event"):
        guess_format(plain)
    ndjson = tmp_path / "feed.ndjson"
    assert guess_format(ndjson) == "jsonl"


def test_bundled_sample_feeds_are_all_valid() -> None:
    feeds = sample_feeds()
    assert {f.format for f in feeds} >= {"csv", "txt", "jsonl"}
    assert any(f.allowlist for f in feeds)
    for feed in feeds:
        good, bad = split_items(
            list(read_feed(feed.path, format=feed.format, type_=feed.type_, source=feed.source))
        )
        assert good and not bad, (feed.path, bad)
    allow = [
        i
        for f in feeds
        if f.allowlist
        for i in read_feed(f.path, format=f.format, type_=f.type_)
        if isinstance(i, Indicator)
    ]
    values = {i.value for i in allow}
    # the genuine support lines and domains scam feeds must never override
    assert {"+18006427676", "+18882804331", "microsoft.com", "amazon.com"} <= values
