"""STIX 2.1 bundles and the patterns that reduce to indicators."""

from __future__ import annotations

import pytest

from engine.core.feeds import (
    stix_pattern_values,
)
from engine.core.models import IndicatorType
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import read_fixture

T = IndicatorType


def test_stix_fixture_good_and_bad_objects() -> None:
    good, bad = read_fixture("stix_bundle.json")
    assert [(i.type, i.value) for i in good] == [
        (T.DOMAIN, "microsoft-support-desk.example"),
        (T.DOMAIN, "amazon-refunds.example"),
        (T.URL, "lure.example/amazon/refund"),
        (T.URL, "lure.example/it's-refund"),  # \' unescaped by the parser's token
        (T.DOMAIN, "windows-alert.example"),
        (T.DOMAIN, "win-helpdesk.example"),
    ]
    first = good[0]
    assert first.confidence == 85
    assert first.tags == ("microsoft", "tech-support")  # labels
    assert first.valid_from == 1_767_312_000_000
    assert first.valid_until == 1_893_542_400_000
    assert first.description == "Fake Microsoft support site"
    assert first.reference == "https://example.org/report/42"
    assert good[1].description == "Amazon refund lure: a domain and a URL"
    by_id = {e.object_id: e.reason for e in bad}
    prefix = "indicator--0c1f0a9e-1b2c-4d3e-8f40-0000000000"
    assert set(by_id) == {f"{prefix}{n:02d}" for n in (4, 5, 6, 7, 8, 10, 11)}
    assert by_id[f"{prefix}04"] == "pattern: unsupported STIX observable file:hashes.SHA-256"
    assert "AND" in by_id[f"{prefix}05"]
    assert by_id[f"{prefix}06"].startswith("pattern: not a valid STIX 2.1 pattern")
    assert by_id[f"{prefix}07"].startswith("confidence: 150")
    assert "sigma" in by_id[f"{prefix}08"]
    assert by_id[f"{prefix}10"].startswith("value:")
    assert "revoked" in by_id[f"{prefix}11"]
    assert all(e.line is None for e in bad)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[domain-name:value = 'a.example']", [(T.DOMAIN, "a.example")]),
        (
            "[domain-name:value = 'a.example' OR url:value = 'http://b.example/x']",
            [(T.DOMAIN, "a.example"), (T.URL, "http://b.example/x")],
        ),
        (
            "[domain-name:value = 'a.example'] OR [url:value = 'http://b.example/']",
            [(T.DOMAIN, "a.example"), (T.URL, "http://b.example/")],
        ),
        (
            "[url:value IN ('http://a.example/', 'http://b.example/')]",
            [
                (T.URL, "http://a.example/"),
                (T.URL, "http://b.example/"),
            ],
        ),
        (r"[url:value = 'http://a.example/it\'s\\x']", [(T.URL, "http://a.example/it's\\x")]),
    ],
)
def test_stix_patterns_accepted(pattern: str, expected: list[tuple[IndicatorType, str]]) -> None:
    assert stix_pattern_values(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[ipv4-addr:value = '192.0.2.1']", "unsupported STIX observable ipv4-addr:value"),
        ("[domain-name:resolves_to_refs[*].value = '192.0.2.1']", "unsupported STIX observable"),
        ("[url:value LIKE 'http://a.example/%']", "unsupported operator LIKE"),
        ("[url:value MATCHES '^http']", "unsupported operator MATCHES"),
        ("[domain-name:value != 'a.example']", "unsupported operator !="),
        ("[domain-name:value = 'a.example'] AND [url:value = 'http://b/']", "AND"),
        ("[domain-name:value = 'a.example'] REPEATS 2 TIMES", "REPEATS"),
        ("[domain-name:value = 'a.example'] WITHIN 5 SECONDS", "WITHIN"),
        ("[domain-name:value = 7]", "non-string"),
        ("domain-name:value = 'a.example'", "not a valid STIX 2.1 pattern"),
    ],
)
def test_stix_patterns_refused(pattern: str, reason: str) -> None:
    with pytest.raises(FeedError) as info:
        stix_pattern_values(pattern)
    assert reason in info.value.reason
