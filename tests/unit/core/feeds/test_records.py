"""indicator.v1 records, CSV and JSON lines: bad lines say where and why, records round-trip."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.feeds import (
    format_timestamp,
    indicator_from_record,
    indicator_to_record,
    parse_mapping,
    parse_timestamp,
    read_feed,
)
from engine.core.models import Indicator, IndicatorType, Severity
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import FEEDS, read_fixture, split_items

T = IndicatorType


def test_csv_fixture_good_and_bad_lines() -> None:
    good, bad = read_fixture("indicators.csv")
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


def test_jsonl_fixture_good_and_bad_lines() -> None:
    good, bad = read_fixture("indicators.jsonl")
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
    good, bad = split_items(list(read_feed(untyped, type_=T.PHONE)))
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


def test_exported_records_follow_the_indicator_schema() -> None:
    schema_path = Path(__file__).resolve().parents[4] / "schemas" / "indicator.v1.json"
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


def test_any_csv_through_a_column_mapping() -> None:
    mapping = parse_mapping(
        ["value=Reported Number", "type=phone", "tags=campaign", "description=Notes"]
    )
    good, bad = read_fixture("partner_numbers.csv", mapping=mapping, region="GB")
    assert [i.value for i in good] == ["+442079460958", "+442079460959", "+442079460958"]
    assert all(i.type is T.PHONE for i in good)  # "phone" names no column: a constant
    assert good[0].tags == ("HMRC impersonation",)
    assert good[0].description == 'said "tax refund", asked for gift cards'  # quotes, CRLF
    assert [(e.line, e.reason.split(":")[0]) for e in bad] == [(6, "value")]  # after a comment


def test_a_mapping_must_name_a_value_column_and_indicator_fields(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"not an indicator\.v1 field"):
        parse_mapping(["number=Phone"])
    with pytest.raises(FeedError, match="FIELD=COLUMN"):
        parse_mapping(["value"])
    with pytest.raises(FeedError, match="value column is missing"):
        parse_mapping(["type=phone"])
    with pytest.raises(FeedError, match="no column 'Phone'"):
        list(read_feed(FEEDS / "partner_numbers.csv", mapping=parse_mapping(["value=Phone"])))
    with pytest.raises(FeedError, match="no type"):
        list(read_feed(FEEDS / "partner_numbers.csv", mapping={"value": "Reported Number"}))
    with pytest.raises(FeedError, match="--map reads a CSV"):
        read_feed(FEEDS / "partner_numbers.csv", format="stix", mapping={"value": "x"})


def test_csv_comment_lines_before_and_among_rows(tmp_path: Path) -> None:
    path = tmp_path / "commented.csv"
    path.write_bytes(
        b"\xef\xbb\xbf# exported 2026-11-30\r\ntype,value\r\n# a note\r\nphone,8005550199\r\n"
    )
    good, bad = split_items(list(read_feed(path)))
    assert not bad and [i.value for i in good] == ["+18005550199"]
