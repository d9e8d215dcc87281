"""Feed readers: every format, broken lines reported with where and why, records round-trip."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.feeds import (
    FORMATS,
    format_timestamp,
    guess_format,
    indicator_from_record,
    indicator_to_record,
    parse_timestamp,
    read_feed,
    stix_pattern_values,
)
from engine.core.models import Indicator, IndicatorType, Severity
from engine.devtools.samples import sample_feeds
from engine.errors import FeedError

FEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"
T = IndicatorType


def _split(items: list[Indicator | FeedError]) -> tuple[list[Indicator], list[FeedError]]:
    good = [i for i in items if isinstance(i, Indicator)]
    bad = [i for i in items if isinstance(i, FeedError)]
    assert len(good) + len(bad) == len(items)
    return good, bad


def _read(name: str, **kw: object) -> tuple[list[Indicator], list[FeedError]]:
    return _split(list(read_feed(FEEDS / name, **kw)))  # type: ignore[arg-type]


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


def test_csv_fixture_good_and_bad_lines() -> None:
    good, bad = _read("indicators.csv")
    assert [(i.type, i.value) for i in good] == [
        (T.PHONE, "+18005550199"),
        (T.PHONE, "+18885550142"),
        (T.DOMAIN, "evil-support.example"),
        (T.URL, "helpdesk.example/Call-Now"),
        (T.PHONE_PREFIX, "+1844555"),
    ]
    first = good[0]
    assert first.sources == ("ftc",)
    assert first.severity is Severity.CRITICAL
    assert first.confidence == 90
    assert first.tags == ("microsoft", "tech-support")
    assert first.valid_from == 1_767_225_600_000  # 2026-01-01T00:00:00Z
    assert first.valid_until == 1_893_456_000_000  # 2030-01-01T00:00:00Z
    assert first.description == "Fake support, call-back number"
    assert first.reference == "https://example.org/r/1"
    assert good[1].sources == ("indicators.csv",)  # no source: the file name
    assert good[1].severity is Severity.HIGH and good[1].confidence == 50
    assert good[3].valid_until == 1_767_225_600_000  # epoch ms in a cell
    where = [(e.line, e.reason.split(":")[0]) for e in bad]
    assert where == [
        (6, "type"),
        (7, "value"),
        (8, "confidence"),
        (10, "severity"),
        (11, "valid_until"),
        (13, "12 cells for 10 columns (a comma in a value needs quotes)"),
    ]
    assert all(e.file == str(FEEDS / "indicators.csv") for e in bad)
    assert "'fax'" in bad[0].reason and "150" in bad[2].reason


def test_txt_fixture_needs_a_type_and_skips_comments() -> None:
    with pytest.raises(FeedError, match="--type"):
        list(read_feed(FEEDS / "domains.txt"))
    good, bad = _read("domains.txt", type_=T.DOMAIN, source="team-x")
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


def test_jsonl_fixture_good_and_bad_lines() -> None:
    good, bad = _read("indicators.jsonl")
    assert [(i.type, i.value) for i in good] == [
        (T.PHONE, "+442079460958"),
        (T.URL, "refund.example/amazon?id=1"),
        (T.DOMAIN, "pc-alert.example"),
    ]
    assert good[0].valid_until == 1_909_044_000_000  # 2030-06-30T12:00:00+02:00
    assert good[1].sources == ("a", "b")
    assert good[2].tags == ("a", "b")
    assert [e.line for e in bad] == [3, 4, 6, 7, 8, 9]
    reasons = [e.reason for e in bad]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "expected a JSON object, got list"
    assert reasons[2].startswith("confidence: -1")
    assert reasons[3].startswith("type: unknown type 'ipv4'")
    assert reasons[4] == "value: missing or empty"
    assert reasons[5].startswith("valid_from:")


def test_stix_fixture_good_and_bad_objects() -> None:
    good, bad = _read("stix_bundle.json")
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


def test_misp_fixture_good_and_bad_attributes() -> None:
    good, bad = _read("misp_event.json", source="misp-partner")
    assert [(i.type, i.value) for i in good] == [
        (T.PHONE, "+18775550123"),
        (T.DOMAIN, "amazon-refund-desk.example"),
        (T.DOMAIN, "support.windows-helpdesk.example"),  # hostname → domain
        (T.URL, "popup.example/alert?call=18005550199"),
        (T.URL, "amazon-refund.example/claim"),  # from the url object
    ]
    assert all(i.severity is Severity.MEDIUM for i in good)  # threat_level_id 2
    assert all(i.sources == ("misp-partner",) for i in good)
    assert good[0].description == "Call-back number shown in pop-ups"  # comment
    assert good[0].tags == ("microsoft", "tlp:green")  # attribute and event tags
    reasons = {
        e.object_id.removeprefix("attribute 5f0a0000-0000-4000-8000-0000000000"): e.reason
        for e in bad
        if e.object_id
    }
    assert set(reasons) == {"a5", "a6", "a7"}  # the port and comment attributes are context
    assert reasons["a5"] == "type: unsupported MISP attribute type 'ip-dst'"
    assert reasons["a6"] == "to_ids is false: MISP marks it as not for detection"
    assert reasons["a7"].startswith("value:")


def test_misp_list_and_rest_response_forms(tmp_path: Path) -> None:
    event = orjson.loads((FEEDS / "misp_event.json").read_bytes())
    for document in ([event, event], {"response": [event]}):
        path = tmp_path / "events.json"
        path.write_bytes(orjson.dumps(document))
        assert guess_format(path) == "misp"
        good, _ = _split(list(read_feed(path)))
        assert len(good) == 5 * (2 if isinstance(document, list) else 1)


def test_record_source_wins_over_the_default() -> None:
    own = indicator_from_record(
        {"type": "domain", "value": "a.example", "source": "feed-a"}, source="cli", region="US"
    )
    fallback = indicator_from_record(
        {"type": "domain", "value": "a.example"}, source="cli", region="US"
    )
    both = indicator_from_record(
        {"type": "domain", "value": "a.example", "source": "z", "sources": ["y", "z"]},
        source=None,
        region="US",
    )
    assert own.sources == ("feed-a",)
    assert fallback.sources == ("cli",)
    assert both.sources == ("y", "z")


def test_region_reads_national_numbers() -> None:
    rec = {"type": "phone", "value": "020 7946 0958"}
    assert indicator_from_record(rec, source=None, region="GB").value == "+442079460958"
    with pytest.raises(FeedError, match=r"^value:"):
        indicator_from_record({"type": "phone", "value": "12"}, source=None, region="US")


@pytest.mark.parametrize(
    ("rec", "field"),
    [
        ({"type": "phone"}, "value"),
        ({"value": "a.example"}, "type"),
        ({"type": "domain", "value": "a.example", "severity": 3}, "severity"),
        ({"type": "domain", "value": "a.example", "confidence": "high"}, "confidence"),
        ({"type": "domain", "value": "a.example", "confidence": True}, "confidence"),
        ({"type": "domain", "value": "a.example", "tags": 5}, "tags"),
        ({"type": "domain", "value": "a.example", "tags": ["ok", 5]}, "tags"),
        ({"type": "domain", "value": "a.example", "description": []}, "description"),
        ({"type": "domain", "value": "a.example", "valid_until": 1_700}, "valid_until"),
        (
            {"type": "domain", "value": "a.example", "valid_until": "2026-13-01T00:00:00Z"},
            "valid_until",
        ),
        ({"type": "domain", "value": "a.example", "valid_from": "2026-01-01"}, "valid_from"),
    ],
)
def test_bad_records_name_the_field(rec: dict[str, object], field: str) -> None:
    with pytest.raises(FeedError) as info:
        indicator_from_record(rec, source=None, region="US")
    assert info.value.reason.startswith(f"{field}:")


def test_timestamps_rfc3339_and_epoch_ms() -> None:
    assert parse_timestamp("t", "2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert parse_timestamp("t", "2026-01-01t01:00:00+01:00") == 1_767_225_600_000
    assert parse_timestamp("t", "2026-01-01 00:00:00.250") == 1_767_225_600_250  # UTC
    assert parse_timestamp("t", "1767225600000") == 1_767_225_600_000
    assert parse_timestamp("t", 1_767_225_600_000) == 1_767_225_600_000
    assert parse_timestamp("t", None) is None and parse_timestamp("t", "") is None
    assert format_timestamp(1_767_225_600_250) == "2026-01-01T00:00:00.250Z"
    assert format_timestamp(None) is None


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


def test_bad_lines_never_raise(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"\n".join([b"{", b"42", b'{"type": 1}', b"\x80\x81", b"null"]) + b"\n")
    items = list(read_feed(junk))
    assert len(items) == 5
    assert all(isinstance(i, FeedError) and i.line == n for n, i in enumerate(items, start=1))


def test_csv_without_value_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("type,indicator\nphone,+18005550199\n")
    with pytest.raises(FeedError, match="no 'value' column"):
        list(read_feed(path))
    untyped = tmp_path / "y.csv"
    untyped.write_text("value,source\n+1 800 555 0199,x\n")
    good, bad = _split(list(read_feed(untyped, type_=T.PHONE)))
    assert [i.value for i in good] == ["+18005550199"] and not bad


_records = st.fixed_dictionaries(
    {
        "type": st.just("domain"),
        "value": st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.example", fullmatch=True),
        "sources": st.lists(st.text("abcxyz-", min_size=1, max_size=6), max_size=3),
        "severity": st.sampled_from([s.value for s in Severity]),
        "confidence": st.integers(0, 100),
        "tags": st.lists(st.text("abc:;-", min_size=1, max_size=5).filter(lambda t: ";" not in t)),
        "valid_until": st.one_of(st.none(), st.integers(946_684_800_000, 4_102_444_800_000)),
        "description": st.text(max_size=20).map(str.strip),
    }
)


@settings(max_examples=60, deadline=None)
@given(_records)
def test_record_round_trip(rec: dict[str, object]) -> None:
    """to_record(from_record(x)) read back gives the same indicator, and the same bytes."""
    ind = indicator_from_record(rec, source="fallback", region="US")
    record = indicator_to_record(ind)
    again = indicator_from_record(orjson.loads(orjson.dumps(record)), source=None, region="US")
    assert again == ind
    assert orjson.dumps(indicator_to_record(again)) == orjson.dumps(record)
    assert record["source"] == (ind.sources[0] if ind.sources else None)


def test_bundled_sample_feeds_are_all_valid() -> None:
    feeds = sample_feeds()
    assert {f.format for f in feeds} >= {"csv", "txt", "jsonl"}
    assert any(f.allowlist for f in feeds)
    for feed in feeds:
        good, bad = _split(
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


def test_txt_inline_comments_and_url_fragments(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://a.example/x#frag  # seen 2026-01-02\n\t# whole-line comment\n")
    good, bad = _split(list(read_feed(path, type_=T.URL)))
    assert not bad
    assert [i.value for i in good] == [
        indicator_from_record(
            {"type": "url", "value": "http://a.example/x#frag"}, source=None, region="US"
        ).value
    ]


def test_exported_records_follow_the_indicator_schema() -> None:
    schema_path = Path(__file__).resolve().parents[3] / "schemas" / "indicator.v1.json"
    validator = jsonschema.Draft202012Validator(orjson.loads(schema_path.read_bytes()))
    indicators = [
        i
        for name in ("indicators.csv", "indicators.jsonl", "stix_bundle.json", "misp_event.json")
        for i in read_feed(FEEDS / name)
        if isinstance(i, Indicator)
    ]
    assert len(indicators) >= 15
    for ind in indicators:
        record = orjson.loads(orjson.dumps(indicator_to_record(ind)))
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, (record, errors)
