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


def test_hosts_file_crlf_bom_localhost_and_several_names() -> None:
    good, bad = read_fixture("scam_hosts.txt")  # no --type: every name is a domain
    assert [i.value for i in good] == [
        "microsoft-alert-support.example",
        "windows-defender-helpline.example",  # upper case, trailing dot, inline comment
        "amazon-refund-center.example",
        "www.amazon-refund-center.example",  # two names on one line
        "apple-icloud-locked.example",  # a tab between address and name
        "microsoft-alert-support.example",  # the list's duplicate
        "ipv6-sink.example",  # "::" as the address
    ]
    assert all(i.type is T.DOMAIN for i in good)
    assert not any("localhost" in i.value or "broadcasthost" in i.value for i in good)
    assert [(e.line, e.reason.split(":")[0]) for e in bad] == [(16, "value")]


def test_hosts_lines_that_are_not_address_and_name(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("0.0.0.0\nbare-name.example\ntwo.example names.example\n")
    good, bad = split_items(list(read_feed(path, format="hosts")))
    assert [i.value for i in good] == ["bare-name.example"]
    assert [e.line for e in bad] == [1, 3]


def test_url_list_defanged_duplicates_and_blank_lines() -> None:
    good, bad = read_fixture("openphish_feed.txt")
    assert [i.value for i in good] == [
        "paypal-account-verify.example/signin",
        "secure-login.bank-example.test/update?acct=1",
        "amazon-prime-renewal.example/billing",  # hxxps and [.]
        "paypal-account-verify.example/signin",
        "microsoft-365-login.example/common/oauth2",
    ]
    assert all(i.type is T.URL for i in good)
    assert [e.line for e in bad] == [7]
