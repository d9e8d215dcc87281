"""The format told from the content: the extension of a published list says little."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.feeds import guess_format, read_feed
from engine.core.models import IndicatorType as T
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import FEEDS, sort_items


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scam_hosts.txt", "hosts"),
        ("openphish_feed.txt", "urls"),
        ("urlhaus_csv.txt", "urlhaus"),
        ("phishtank_online_valid.csv", "phishtank"),
        ("ftc_dnc_complaints.csv", "ftc-dnc"),
        ("partner_numbers.csv", "csv"),
        ("isac_bundle.stix2", "stix"),
        ("misp_pymisp_event.json", "misp"),
        ("misp_search_response.json", "misp"),
    ],
)
def test_published_lists_are_told_from_their_content(name: str, expected: str) -> None:
    assert guess_format(FEEDS / name) == expected


@pytest.mark.parametrize(
    ("source", "renamed", "expected"),
    [
        ("scam_hosts.txt", "hosts", "hosts"),  # no extension at all
        ("scam_hosts.txt", "blocklist.csv", "hosts"),
        ("urlhaus_csv.txt", "urlhaus.csv", "urlhaus"),
        ("ftc_dnc_complaints.csv", "ftc.txt", "ftc-dnc"),
        ("phishtank_online_valid.csv", "verified_online.txt", "phishtank"),
        ("stix_bundle.json", "bundle.txt", "stix"),
        ("misp_event.json", "event.stix2", "misp"),
        ("indicators.jsonl", "records.json", "jsonl"),
        ("indicators.csv", "records.txt", "csv"),
        ("openphish_feed.txt", "feed", "urls"),
    ],
)
def test_the_content_wins_over_the_extension(
    tmp_path: Path, source: str, renamed: str, expected: str
) -> None:
    path = tmp_path / renamed
    path.write_bytes((FEEDS / source).read_bytes())
    assert guess_format(path) == expected
    assert sort_items(list(read_feed(path))).good  # and it loads as that format


def test_format_overrides_the_content() -> None:
    # told from the content this is the FTC export; --format csv reads indicator.v1 columns
    with pytest.raises(FeedError, match="no 'value' column"):
        list(read_feed(FEEDS / "ftc_dnc_complaints.csv", format="csv"))
    with pytest.raises(FeedError, match="--type"):
        list(read_feed(FEEDS / "scam_hosts.txt", format="txt"))
    as_text = sort_items(list(read_feed(FEEDS / "openphish_feed.txt", format="txt", type_=T.URL)))
    assert len(as_text.good) == 5


def test_a_list_of_plain_domains_is_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "domains.txt"
    path.write_text("# scam domains\nevil.example\nworse.example\n")
    assert guess_format(path) == "txt"
