"""Every matching rule with hand-written expectations, the negative cases included."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.core.events import decode_call, decode_web
from engine.core.matcher import (
    MAX_PART_READS,
    Matcher,
    _lengths,
    _prefix_lookup,
    _suffix_lookup,
    numbers_in_text,
)
from engine.core.models import (
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Rule,
    Verdict,
)
from engine.devtools.reference import ReferenceMatcher, numbers_by_hand

T = IndicatorType
NOW = 1_764_000_000_000
HOUR = 3_600_000


def ind(type_: IndicatorType, value: str, **kw: Any) -> Indicator:
    return Indicator(type_, value, sources=("test",), **kw)


INDICATORS = (
    ind(T.PHONE, "+18005550199"),
    ind(T.PHONE, "+442079460000"),
    ind(T.PHONE_PREFIX, "+1888"),
    ind(T.PHONE_PREFIX, "+1888555"),
    ind(T.PHONE_PREFIX, "+1877"),
    ind(T.DOMAIN, "evil.com"),
    ind(T.DOMAIN, "higan.org"),
    ind(T.DOMAIN, "xn--bcher-kva.de"),  # bücher.de
    ind(T.DOMAIN, "support.microsoft.com"),  # listed by a feed, but allowlisted below
    ind(T.URL, "bit.ly/abc"),
    ind(T.URL, "scam.example"),
    ind(T.URL, "pages.example:8443/pay"),
    ind(T.KEYWORD, "microsoft-support"),
    ind(T.KEYWORD, "amazon-refund"),
    ind(T.PHONE, "+18005550100", valid_until=NOW - HOUR),  # expired
    ind(T.DOMAIN, "old.example", valid_until=NOW - 1),  # expired
    ind(T.DOMAIN, "future.example", valid_from=NOW + HOUR),  # not yet valid
    ind(T.KEYWORD, "paypal-help", valid_until=NOW - 1),  # expired
    ind(T.PHONE, "+18005550142"),  # allowlisted number
    ind(T.PHONE, "+18666666666"),  # under an allowlisted prefix
)
ALLOWLIST = (
    ind(T.DOMAIN, "microsoft.com"),
    ind(T.PHONE, "+18005550142"),
    ind(T.PHONE_PREFIX, "+1866666"),
    ind(T.URL, "bit.ly/abcsafe"),
    ind(T.DOMAIN, "lapsed.evil.com", valid_until=NOW - 1),  # an expired allowlist entry
)
SNAPSHOT = IndicatorSnapshot(version=7, indicators=INDICATORS, allowlist=ALLOWLIST)
MATCHER = Matcher.build(SNAPSHOT, default_region="US")
REFERENCE = ReferenceMatcher(SNAPSHOT, default_region="US")


def call(caller: str, callee: str, **extra: Any) -> Verdict:
    raw = orjson.dumps(
        {"event_id": "c1", "ts": NOW, "partner_id": "p", "caller": caller, "callee": callee} | extra
    )
    verdict = MATCHER.match_call(decode_call(raw), NOW)
    assert found(verdict) == found(REFERENCE.match_call(decode_call(raw), NOW))
    return verdict


def web(**fields: Any) -> Verdict:
    raw = orjson.dumps({"event_id": "w1", "ts": NOW, "partner_id": "p"} | fields)
    verdict = MATCHER.match_web(decode_web(raw), NOW)
    assert found(verdict) == found(REFERENCE.match_web(decode_web(raw), NOW))
    return verdict


def found(verdict: Verdict) -> set[tuple[str, str, str]]:
    """(rule, field, indicator value) of every match."""
    return {(m.rule.value, m.field, m.indicator.value) for m in verdict.matches}


# ---------------------------------------------------------------------------- calls


@pytest.mark.parametrize(
    "written",
    [
        "+18005550199",
        "+1 (800) 555-0199",
        "1-800-555-0199",
        "18005550199",
        "(800) 555 0199",
        "001 800 555 0199",
        "tel:+1-800-555-0199",
    ],
)
def test_callee_scam_number_in_any_written_form(written: str) -> None:
    verdict = call("+12125550123", written)
    assert found(verdict) == {("callee_scam_number", "callee", "+18005550199")}
    [m] = verdict.matches
    assert (m.observed, m.normalized) == (written, "+18005550199")
    assert verdict.unparsed == ()


def test_caller_scam_number_and_national_format_of_the_event_region() -> None:
    assert found(call("020 7946 0000", "+12125550123", region="GB")) == {
        ("caller_scam_number", "caller", "+442079460000")
    }
    # the same digits read as a US number are something else
    assert found(call("020 7946 0000", "+12125550123")) == set()


def test_phone_prefix_only_the_longest_active_one() -> None:
    assert found(call("+18885550123", "+12125550123")) == {
        ("caller_scam_number", "caller", "+1888555")
    }
    assert found(call("+18884440123", "+12125550123")) == {
        ("caller_scam_number", "caller", "+1888")
    }
    assert found(call("+18774440123", "+18885550123")) == {
        ("caller_scam_number", "caller", "+1877"),
        ("callee_scam_number", "callee", "+1888555"),
    }


def test_both_sides_and_exact_plus_prefix_on_one_number() -> None:
    snapshot = IndicatorSnapshot(1, (ind(T.PHONE, "+18885550123"), ind(T.PHONE_PREFIX, "+1888")))
    matcher = Matcher.build(snapshot)
    raw = orjson.dumps(
        {
            "event_id": "e",
            "ts": NOW,
            "partner_id": "p",
            "caller": "8885550123",
            "callee": "+18885550123",
        }
    )
    assert found(matcher.match_call(decode_call(raw), NOW)) == {
        ("callee_scam_number", "callee", "+18885550123"),
        ("callee_scam_number", "callee", "+1888"),
        ("caller_scam_number", "caller", "+18885550123"),
        ("caller_scam_number", "caller", "+1888"),
    }


def test_withheld_and_garbage_numbers_are_unparsed_not_errors() -> None:
    verdict = call("anonymous", "")
    assert verdict.matches == ()
    assert set(verdict.unparsed) == {"caller", "callee"}
    verdict = call("not a number", "1-800-555-0199")
    assert verdict.unparsed == ("caller",)
    assert found(verdict) == {("callee_scam_number", "callee", "+18005550199")}


def test_clean_call_is_empty() -> None:
    verdict = call("+12125550123", "+13105550188")
    assert verdict == Verdict()


def test_allowlisted_numbers_never_alert() -> None:
    assert found(call("+18005550142", "1 800 555 0142")) == set()
    # +18666666666 is a listed phone, but under the allowlisted prefix +1866666
    assert found(call("+18666666666", "+18666666666")) == set()


def test_expired_number_never_matches_and_expiry_needs_no_rebuild() -> None:
    raw = orjson.dumps(
        {"event_id": "e", "ts": NOW, "partner_id": "p", "caller": "+1", "callee": "+18005550100"}
    )
    event = decode_call(raw)
    assert found(MATCHER.match_call(event, NOW)) == set()
    # the same matcher, asked about a moment when it was still valid
    assert found(MATCHER.match_call(event, NOW - 2 * HOUR)) == {
        ("callee_scam_number", "callee", "+18005550100")
    }


# ---------------------------------------------------------------------------- domains


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.com", {"evil.com"}),
        ("a.b.EVIL.com.", {"evil.com"}),
        ("evil.com:8080", {"evil.com"}),
        ("notevil.com", set()),
        ("evil.com.example.org", set()),
        ("michigan.org", set()),
        ("www.higan.org", {"higan.org"}),
        ("www.bücher.de", {"xn--bcher-kva.de"}),
        ("WWW.XN--BCHER-KVA.DE", {"xn--bcher-kva.de"}),
        ("old.example", set()),  # expired
        ("future.example", set()),  # not valid yet
        ("support.microsoft.com", set()),  # listed, but under allowlisted microsoft.com
        ("lapsed.evil.com", {"evil.com"}),  # its allowlist entry has expired
    ],
)
def test_host_scam_domain_at_label_boundaries(host: str, expected: set[str]) -> None:
    verdict = web(host=host)
    assert found(verdict) == {("host_scam_domain", "host", d) for d in expected}
    for m in verdict.matches:
        assert m.observed == host


def test_every_listed_parent_domain_matches() -> None:
    snapshot = IndicatorSnapshot(1, (ind(T.DOMAIN, "evil.com"), ind(T.DOMAIN, "a.evil.com")))
    raw = orjson.dumps({"event_id": "e", "ts": NOW, "partner_id": "p", "host": "x.a.evil.com"})
    assert found(Matcher.build(snapshot).match_web(decode_web(raw), NOW)) == {
        ("host_scam_domain", "host", "evil.com"),
        ("host_scam_domain", "host", "a.evil.com"),
    }


def test_host_of_url_and_referrer() -> None:
    verdict = web(url="https://user:pw@login.evil.com:443/x", referrer="http://www.higan.org/")
    assert found(verdict) == {
        ("host_scam_domain", "url", "evil.com"),
        ("referrer_scam_domain", "referrer", "higan.org"),
    }
    normalized = {m.field: m.normalized for m in verdict.matches}
    assert normalized == {"url": "login.evil.com", "referrer": "www.higan.org"}


def test_same_indicator_in_host_and_url_gives_one_match_per_field() -> None:
    verdict = web(host="evil.com", url="http://evil.com/a")
    assert found(verdict) == {
        ("host_scam_domain", "host", "evil.com"),
        ("host_scam_domain", "url", "evil.com"),
    }


def test_unreadable_host_url_and_referrer_are_unparsed() -> None:
    verdict = web(host="bad host!", url="mailto:x@y", referrer="http://[::1")
    assert verdict.matches == ()
    assert set(verdict.unparsed) == {"host", "url", "referrer"}


# ---------------------------------------------------------------------------- urls


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bit.ly/abc", {"bit.ly/abc"}),
        ("http://BIT.LY/abcdef?x=1", {"bit.ly/abc"}),
        ("bit.ly/abc#frag", {"bit.ly/abc"}),
        ("https://bit.ly/ab", set()),
        ("https://bit.ly/ABC", set()),  # paths are case-sensitive
        ("https://bit.ly/abcsafe/1", set()),  # under an allowlisted URL
        ("https://scam.example", {"scam.example"}),
        ("https://scam.example:8080/any", {"scam.example"}),
        ("https://scam.example.org/", set()),
        ("https://www.scam.example/", set()),  # a URL prefix is not a domain
        ("https://pages.example:8443/payment", {"pages.example:8443/pay"}),
        ("https://pages.example/pay", set()),  # other port
    ],
)
def test_url_scam_url_is_a_prefix_match(url: str, expected: set[str]) -> None:
    verdict = web(url=url)
    assert {m.indicator.value for m in verdict.matches if m.rule is Rule.URL_SCAM_URL} == expected


def test_url_scam_url_in_referrer() -> None:
    assert found(web(host="shop.example", referrer="https://bit.ly/abc1")) == {
        ("url_scam_url", "referrer", "bit.ly/abc")
    }


@pytest.mark.parametrize(
    ("url", "observed"),
    [
        ("https://shop.example/call-1-800-555-0199", "1-800-555-0199"),
        ("https://shop.example/?tel=18005550199&x=1", "18005550199"),
        ("https://shop.example/?tel=%2B18005550199", "+18005550199"),
        ("https://shop.example/c/(800)%20555-0199/now", "(800) 555-0199"),
        ("https://shop.example/1.800.555.0199", "1.800.555.0199"),
        ("https://shop.example/x?n=+44%2020%207946%200000", "+44 20 7946 0000"),
    ],
)
def test_url_scam_number_in_many_written_forms(url: str, observed: str) -> None:
    verdict = web(url=url)
    numbers = [m for m in verdict.matches if m.rule is Rule.URL_SCAM_NUMBER]
    assert len(numbers) == 1
    assert numbers[0].observed == observed
    assert numbers[0].indicator.value in {"+18005550199", "+442079460000"}


def test_url_scam_number_negatives() -> None:
    # inside a longer digit run, too short, allowlisted, expired
    assert found(web(url="https://shop.example/order/180055501991234567")) == set()
    assert found(web(url="https://shop.example/5550199")) == set()
    assert found(web(url="https://shop.example/?tel=18005550142")) == set()
    assert found(web(url="https://shop.example/?tel=18005550100")) == set()


def test_url_scam_number_prefix_and_referrer() -> None:
    assert found(web(host="a.example", referrer="https://x.example/?cb=18885559999")) == {
        ("url_scam_number", "referrer", "+1888555")
    }


def test_numbers_in_text_keeps_a_written_plus_and_splits_at_other_characters() -> None:
    assert list(numbers_in_text("/a/18005550199/b?c=%2B442079460000&d=12", "US")) == [
        ("18005550199", "+18005550199"),
        ("+442079460000", "+442079460000"),
    ]


@pytest.mark.parametrize(
    ("url", "observed"),
    [
        # digits glued after the number by a separator: the run as a whole is no number, the
        # number is one of its parts (pieces between separators)
        ("http://x.example/call-1-800-555-0199-24-7", "1-800-555-0199"),
        ("http://x.example/microsoft-help-18005550199-2024.html", "18005550199"),
        ("http://x.example/call-1-800-555-0199-1", "1-800-555-0199"),
        ("http://x.example/c/(800)%20555-0199-1", "(800) 555-0199"),
        ("http://x.example/?n=2024-11-28-1-800-555-0199", "1-800-555-0199"),  # > 15 digits
        ("http://x.example/?n=123%2B18005550199", "+18005550199"),  # a written +, kept
        ("http://x.example/1-800-555-0199-2024112812345678", "1-800-555-0199"),
    ],
)
def test_url_scam_number_with_more_digits_glued_on(url: str, observed: str) -> None:
    numbers = [m for m in web(url=url).matches if m.rule is Rule.URL_SCAM_NUMBER]
    assert [(m.observed, m.normalized, m.indicator.value) for m in numbers] == [
        (observed, "+18005550199", "+18005550199")
    ]


def test_a_run_that_reads_as_a_number_is_not_also_read_in_parts() -> None:
    # "+44 20 7946 0000" is a UK number: its part "20 7946 0000" is not read as the US
    # number +1 207-946-0000, which is not written there
    us = ind(T.PHONE, "+12079460000")
    matcher = Matcher.build(IndicatorSnapshot(1, (*INDICATORS, us), ALLOWLIST))
    for url in (
        "https://x.example/?n=%2B44%2020%207946%200000",
        "https://x.example/0044-20-7946-0000",
    ):
        raw = orjson.dumps({"event_id": "e", "ts": NOW, "partner_id": "p", "url": url})
        assert found(matcher.match_web(decode_web(raw), NOW)) == {
            ("url_scam_number", "url", "+442079460000")
        }
    assert numbers_in_text("/x/1-800-555-0199", "US") == [("1-800-555-0199", "+18005550199")]


def test_digits_written_together_are_never_split() -> None:
    """Decision: a number is delimited by separators or other characters; digits written
    together (an order number, a timestamp) are one piece, never cut into a number, even
    when some of their digits spell one: ``/order-2024112812345678`` holds no number."""
    listed = (ind(T.PHONE, "+12024112812"), ind(T.PHONE, "+18005550199"))
    matcher = Matcher.build(IndicatorSnapshot(1, listed))
    for url in (
        "https://shop.example/order-2024112812345678",
        "https://shop.example/order-2024112812345678.html",
        "https://shop.example/order/180055501991234567",
        "https://shop.example/t/202411281-2345678",  # neither piece is a number
    ):
        raw = orjson.dumps({"event_id": "e", "ts": NOW, "partner_id": "p", "url": url})
        assert matcher.match_web(decode_web(raw), NOW).matches == (), url
        assert numbers_in_text(url, "US") == []
    # the same digits written with separators are a number
    assert numbers_in_text("/order-202-411-2812", "US") == [("202-411-2812", "+12024112812")]


def test_only_maximal_parts_are_read() -> None:
    # "800-555-0199" is inside "1-800-555-0199", which reads: only the larger part is kept
    assert numbers_in_text("/call-1-800-555-0199-24-7", "US")[0] == (
        "1-800-555-0199",
        "+18005550199",
    )
    # parts that overlap without one holding the other are both kept: a number written in
    # the URL is never missed for a neighbouring reading (here 555-0199-24-7, a possible US
    # number; it alerts only if it is itself listed)
    assert numbers_in_text("/call-1-800-555-0199-24-7", "US") == [
        ("1-800-555-0199", "+18005550199"),
        ("555-0199-24-7", "+15550199247"),
    ]


def test_reading_parts_of_runs_has_a_budget_per_url() -> None:
    # a hostile URL of one-digit pieces would cost ~9 number reads per digit: after
    # MAX_PART_READS reads of parts, no more parts are tried (whole runs still are)
    hostile = "/" + "-".join("1" * 600) + "/call-1-800-555-0199-1/18005550199"
    numbers = numbers_in_text(hostile, "US")
    assert numbers == numbers_by_hand(hostile, "US")
    assert numbers[-1] == ("18005550199", "+18005550199")  # a whole run: still read
    assert ("1-800-555-0199", "+18005550199") not in numbers  # a part: the budget is spent
    assert numbers_in_text("/call-1-800-555-0199-1", "US") == [("1-800-555-0199", "+18005550199")]
    assert MAX_PART_READS == 64


# ---------------------------------------------------------------------------- keywords


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "microsoft-support.help"}, {("host", "microsoft-support")}),
        ({"host": "MICR0S0FT-SUPPORT.help"}, {("host", "microsoft-support")}),
        ({"host": "rnicrosoft-support.help"}, {("host", "microsoft-support")}),
        ({"host": "mіcrosоft-support.help"}, {("host", "microsoft-support")}),  # Cyrillic і, о
        ({"host": "xn--mcrosft-support-dsm03a.help"}, {("host", "microsoft-support")}),
        ({"url": "https://x.example/amazon-refund/form"}, {("url", "amazon-refund")}),
        ({"url": "https://amazon-refund.example/"}, {("url", "amazon-refund")}),
        ({"host": "microsoft-support.microsoft.com"}, set()),  # under an allowlisted domain
        ({"url": "https://microsoft.com/microsoft-support"}, set()),
        ({"host": "paypal-help.example"}, set()),  # expired keyword
        ({"host": "micro-soft.example"}, set()),
        ({"referrer": "https://amazon-refund.example/"}, set()),  # keywords: host and url
    ],
)
def test_keyword_impersonation(fields: dict[str, str], expected: set[tuple[str, str]]) -> None:
    if "host" not in fields and "url" not in fields:
        fields = {"host": "clean.example"} | fields
    verdict = web(**fields)
    assert {
        (m.field, m.indicator.value)
        for m in verdict.matches
        if m.rule is Rule.KEYWORD_IMPERSONATION
    } == expected


def test_punycode_host_keyword_is_found_in_its_unicode_form() -> None:
    # "mіcrosoft-support" with a Cyrillic і, as a DNS query carries it
    verdict = web(host="xn--mcrosoft-support-9vn.example")
    [m] = verdict.matches
    assert m.rule is Rule.KEYWORD_IMPERSONATION
    assert "microsoft-support" in m.normalized


def test_allowlisted_keyword_never_matches() -> None:
    snapshot = IndicatorSnapshot(
        1, (ind(T.KEYWORD, "microsoft-support"),), (ind(T.KEYWORD, "microsoft-support"),)
    )
    raw = orjson.dumps(
        {"event_id": "e", "ts": NOW, "partner_id": "p", "host": "microsoft-support.x"}
    )
    assert Matcher.build(snapshot).match_web(decode_web(raw), NOW).matches == ()


# ---------------------------------------------------------------------------- matcher


def test_counts_version_and_empty_snapshot() -> None:
    assert MATCHER.version == 7
    counts = MATCHER.counts(at_ms=NOW)
    # expired entries are held but not counted as active; "future.example" is not active yet
    assert counts == {T.PHONE: 4, T.PHONE_PREFIX: 3, T.DOMAIN: 4, T.URL: 3, T.KEYWORD: 2}
    empty = Matcher.build(IndicatorSnapshot(0))
    raw = orjson.dumps(
        {
            "event_id": "e",
            "ts": NOW,
            "partner_id": "p",
            "host": "evil.com",
            "url": "http://evil.com/?tel=18005550199",
        }
    )
    assert empty.match_web(decode_web(raw), NOW) == Verdict()
    assert empty.counts() == dict.fromkeys(T, 0)


def test_one_suffix_lookup_serves_indicators_and_allowlist() -> None:
    table = {d: ind(T.DOMAIN, d) for d in ("evil.com", "a.evil.com", "com", "x.a.evil.com.example")}
    table["old.evil.com"] = ind(T.DOMAIN, "old.evil.com", valid_until=NOW - 1)
    # every active label suffix, longest first; never a suffix that is not at a label boundary
    assert [i.value for i in _suffix_lookup(table, "x.a.evil.com", NOW)] == [
        "a.evil.com",
        "evil.com",
        "com",
    ]
    assert [i.value for i in _suffix_lookup(table, "x.a.evil.com", NOW, first=True)] == [
        "a.evil.com"
    ]
    assert [i.value for i in _suffix_lookup(table, "old.evil.com", NOW, first=True)] == [
        "evil.com"  # the expired exact entry is passed over
    ]
    assert _suffix_lookup(table, "notevil.org", NOW) == []
    assert _suffix_lookup({}, "evil.com", NOW, first=True) == []


def test_one_prefix_lookup_serves_indicators_and_allowlist() -> None:
    table = {p: ind(T.PHONE_PREFIX, p) for p in ("+1", "+1800", "+18005550199")}
    table["+1800555"] = ind(T.PHONE_PREFIX, "+1800555", valid_until=NOW - 1)
    lengths = _lengths(table)
    found_prefix = _prefix_lookup(table, lengths, "+18005550123", NOW)
    assert found_prefix is not None and found_prefix.value == "+1800"  # longest active
    exact = _prefix_lookup(table, lengths, "+18005550199", NOW)
    assert exact is not None and exact.value == "+18005550199"
    assert _prefix_lookup(table, lengths, "+44", NOW) is None
    assert _prefix_lookup({}, (), "+18005550199", NOW) is None


def test_a_built_matcher_is_immutable() -> None:
    with pytest.raises(AttributeError, match="immutable"):
        MATCHER.version = 8
    assert MATCHER.version == 7


def test_repeated_keys_in_a_snapshot_are_merged() -> None:
    snapshot = IndicatorSnapshot(
        1,
        (
            Indicator(T.DOMAIN, "evil.com", sources=("a",)),
            Indicator(T.DOMAIN, "evil.com", sources=("b",)),
        ),
    )
    raw = orjson.dumps({"event_id": "e", "ts": NOW, "partner_id": "p", "host": "evil.com"})
    [m] = Matcher.build(snapshot).match_web(decode_web(raw), NOW).matches
    assert m.indicator.sources == ("a", "b")
