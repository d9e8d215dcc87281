"""Plain-text feeds: one value per line, comments skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.feeds import (
    indicator_from_record,
    read_feed,
)
from engine.core.models import IndicatorType
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import FEEDS, read_fixture, split_items

T = IndicatorType


def test_txt_fixture_needs_a_type_and_skips_comments() -> None:
    with pytest.raises(FeedError, match="--type"):
        list(read_feed(FEEDS / "domains.txt"))
    good, bad = read_fixture("domains.txt", type_=T.DOMAIN, source="team-x")
    assert [i.value for i in good] == [
        "microsoft-helpdesk.example",
        "windows-alert.example",
        # the Unicode and the punycode spelling give the same value
        "xn--micrsoft-support-pkn.example",
        "xn--micrsoft-support-pkn.example",
        "valid-after-bad-bytes.example",
    ]
    assert all(i.sources == ("team-x",) for i in good)
    assert [e.line for e in bad] == [5, 9, 11]
    assert "empty label" in bad[0].reason
    assert bad[2].reason.startswith("not UTF-8")


def test_txt_inline_comments_and_url_fragments(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://a.example/x#frag  # seen 2026-01-02\n\t# whole-line comment\n")
    good, bad = split_items(list(read_feed(path, type_=T.URL)))
    assert not bad
    assert [i.value for i in good] == [
        indicator_from_record(
            {"type": "url", "value": "http://a.example/x#frag"}, source=None, region="US"
        ).value
    ]
