"""STIX 2.1 bundles and the patterns that reduce to indicators."""

from __future__ import annotations

import pytest

from engine.core.feeds import (
    stix_pattern_values,
)
from engine.core.models import IndicatorType
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import read_fixture_all

T = IndicatorType


def test_stix_fixture_good_bad_and_skipped_objects() -> None:
    good, bad, skipped = read_fixture_all("stix_bundle.json")
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
    assert set(by_id) == {f"{prefix}{n:02d}" for n in (5, 6, 7, 10)}
    assert "AND" in by_id[f"{prefix}05"]
    assert by_id[f"{prefix}06"].startswith("pattern: not a valid STIX 2.1 pattern")
    assert by_id[f"{prefix}07"].startswith("confidence: 150")
    assert by_id[f"{prefix}10"].startswith("value:")
    assert all(e.line is None for e in bad)
    # nothing wrong with these; scamwatch has no use for them
    skipped_by_id = {e.object_id: e.reason for e in skipped}
    assert set(skipped_by_id) == {f"{prefix}{n:02d}" for n in (4, 8, 11)}
    assert (
        skipped_by_id[f"{prefix}04"]
        == "STIX observable not matched by scamwatch: file:hashes.SHA-256"
    )
    assert "sigma" in skipped_by_id[f"{prefix}08"]
    assert "revoked" in skipped_by_id[f"{prefix}11"]


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
    reading = stix_pattern_values(pattern)
    assert list(reading.values) == expected
    assert reading.unsupported == ()


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[url:value LIKE 'http://a.example/%']", "unsupported operator LIKE"),
        ("[url:value MATCHES '^http']", "unsupported operator MATCHES"),
        ("[domain-name:value != 'a.example']", "unsupported operator !="),
        ("[domain-name:value = 'a.example'] AND [url:value = 'http://b/']", "AND"),
        ("[domain-name:value = 'a.example' AND ipv4-addr:value = '192.0.2.1']", "AND"),
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


@pytest.mark.parametrize(
    ("pattern", "unsupported"),
    [
        ("[ipv4-addr:value = '192.0.2.1']", ("ipv4-addr:value",)),
        (
            "[domain-name:resolves_to_refs[*].value = '192.0.2.1']",
            ("domain-name:resolves_to_refs.[*].value",),
        ),
        ("[file:hashes.MD5 = 'x' AND file:name = 'a.exe']", ("file:hashes.MD5", "file:name")),
        ("[file:hashes.'SHA-256' = 'ab'] REPEATS 2 TIMES", ("file:hashes.SHA-256",)),
    ],
)
def test_stix_patterns_of_other_observables_are_valid_but_unused(
    pattern: str, unsupported: tuple[str, ...]
) -> None:
    reading = stix_pattern_values(pattern)
    assert reading.values == ()
    assert reading.unsupported == unsupported


def test_stix_pattern_with_a_domain_and_an_address_keeps_the_domain() -> None:
    reading = stix_pattern_values(
        "[domain-name:value = 'a.example' OR ipv4-addr:value = '192.0.2.1']"
    )
    assert reading.values == ((T.DOMAIN, "a.example"),)
    assert reading.unsupported == ("ipv4-addr:value",)


def test_stix2_bundle_skips_hashes_and_addresses() -> None:
    good, bad, skipped = read_fixture_all("isac_bundle.stix2")
    assert [(i.type, i.value) for i in good] == [
        (T.DOMAIN, "norton-renewal-desk.example"),
        (T.URL, "geek-squad-billing.example/refund"),
        (T.DOMAIN, "norton-renewal-desk.example"),  # OR'd with an address: the domain kept
    ]
    assert [e.reason for e in skipped] == [
        "STIX observable not matched by scamwatch: file:hashes.SHA-256",
        "STIX observable not matched by scamwatch: ipv4-addr:value",
        "STIX observable not matched by scamwatch: file:hashes.MD5, file:name",
    ]
    assert [e.reason for e in bad] == ["pattern: unsupported operator LIKE on domain-name:value"]
