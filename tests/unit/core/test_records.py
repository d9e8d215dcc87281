"""The typed output records own their wire form: to_json/from_json round trips, optional
fields absent when None, every record valid against its schema."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from engine.core.models import Indicator, IndicatorType, Severity, SourcePosition, Stream
from engine.core.records import (
    Alert,
    DeadLetter,
    Discovery,
    EngineStamp,
    Hunt,
    Journey,
    MatchDetail,
    MatchedIndicator,
    RecordError,
    Sighting,
    Suppressed,
)
from engine.devtools.schemas import validate

PHONE = Indicator(
    IndicatorType.PHONE,
    "+18005550199",
    sources=("ftc",),
    severity=Severity.HIGH,
    confidence=70,
    tags=("tss",),
    valid_until=1_900_000_000_000,
)
MATCHED = MatchedIndicator.of(PHONE)


def alert(**changes: object) -> Alert:
    base = Alert(
        alert_id="5d0f8a0e-4c1b-5e2a-9d3c-1b2a3c4d5e6f",
        ts="2026-01-01T00:00:01.000Z",
        event_ts="2026-01-01T00:00:00.250Z",
        stream=Stream.CALLS,
        rule="callee_scam_number",
        severity="high",
        partner_id="telco-a",
        subscriber_id="sub-1",
        event_id="c-1",
        matches=(MatchDetail("callee", "1 (800) 555-0199", "+18005550199", MATCHED),),
        event={"event_id": "c-1", "extra": [1, 2]},
        source=SourcePosition("calls", 3, 42),
        engine=EngineStamp("0.1.0", 9),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_matched_indicator_is_the_indicator_as_the_alert_carries_it() -> None:
    assert MATCHED.to_dict() == {
        "type": "phone",
        "value": "+18005550199",
        "sources": ["ftc"],
        "severity": "high",
        "confidence": 70,
        "tags": ["tss"],
        "valid_until": "2030-03-17T17:46:40.000Z",
    }


def test_an_alert_without_round_2_fields_has_exactly_the_round_1_fields() -> None:
    doc = orjson.loads(alert().to_json())
    assert list(doc) == [
        "alert_id", "ts", "event_ts", "stream", "rule", "severity", "partner_id",
        "subscriber_id", "event_id", "matches", "event", "source", "engine",
    ]  # fmt: skip
    validate("alert.v1", doc)
    assert Alert.from_json(alert().to_json()) == alert()


def test_round_2_fields_are_written_when_set_and_read_back() -> None:
    full = alert(
        rule="victim_journey",
        severity="critical",
        suppressed=Suppressed(2, "2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z"),
        journey=Journey("a-0", "host_scam_domain", MATCHED, "2026-01-01T00:00:00.000Z", 12.5),
        discovery=Discovery(
            "+18005550199", 3, "2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z", 86400
        ),
        retro=True,
        hunt=Hunt("h-1", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"),
    )
    doc = orjson.loads(full.to_json())
    assert {"suppressed", "journey", "discovery", "retro", "hunt"} <= set(doc)
    assert doc["journey"]["seconds_since"] == 12.5
    assert doc["retro"] is True
    validate("alert.v1", doc)
    assert Alert.from_json(full.to_json()) == full
    # retro false is a value, not an absence
    assert orjson.loads(alert(retro=False).to_json())["retro"] is False


def test_epoch_ms_times_in_a_read_alert_become_rfc3339() -> None:
    doc = alert().to_dict() | {"event_ts": 1_767_225_600_250}
    assert Alert.from_dict(doc).event_ts == "2026-01-01T00:00:00.250Z"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stream": "sms"}, "stream"),
        ({"matches": "x"}, "matches"),
        ({"matches": [{"field": "callee"}]}, "matches[0].observed"),
        ({"source": {"topic": "t", "partition": "0", "offset": 1}}, "source.partition"),
        ({"engine": None}, "engine"),
        ({"retro": "yes"}, "retro"),
        ({"alert_id": None}, "alert_id"),
    ],
)
def test_a_document_that_is_no_alert_is_refused_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(RecordError) as caught:
        Alert.from_dict(alert().to_dict() | change)
    assert str(caught.value).startswith(f"{field}: "), str(caught.value)


def test_not_json_is_a_record_error() -> None:
    with pytest.raises(RecordError):
        Alert.from_json(b"{nope")
    with pytest.raises(RecordError):
        DeadLetter.from_json(b"[1]")


def test_dead_letter_wire_form_and_round_trip() -> None:
    letter = DeadLetter(
        reason="too_large",
        error="record is 9 bytes, the limit is 4",
        stream=Stream.WEB,
        source=SourcePosition("web", 0, 1),
        raw="eyJl",
        ts="2026-01-01T00:00:00.000Z",
        raw_encoding="base64",
        raw_truncated=True,
        raw_size=9,
    )
    doc = orjson.loads(letter.to_json())
    assert list(doc) == [
        "reason", "error", "stream", "source", "raw_truncated", "raw_size", "raw",
        "raw_encoding", "ts",
    ]  # fmt: skip
    validate("deadletter.v1", doc)
    assert DeadLetter.from_json(letter.to_json()) == letter


SIGHTING = Sighting(
    number="+18005550123",
    kind="call",
    partner_id="telco-a",
    subscriber_id="sub-1",
    event_id="c-9",
    ts="2026-01-01T00:10:00.000Z",
    exposure="5d0f8a0e-4c1b-5e2a-9d3c-1b2a3c4d5e6f",
)


def test_sighting_to_json_validates_and_reads_back() -> None:
    for sighting in (SIGHTING, dataclasses.replace(SIGHTING, kind="page", subscriber_id=None)):
        doc = orjson.loads(sighting.to_json())
        validate("sighting.v1", doc)
        assert list(doc) == [
            "number", "kind", "partner_id", "subscriber_id", "event_id", "ts", "exposure",
        ]  # fmt: skip
        assert Sighting.from_json(sighting.to_json()) == sighting
    assert SIGHTING.key == b"+18005550123"  # keyed by the number in E.164
    with pytest.raises(RecordError, match=r"^kind: "):
        Sighting.from_dict(SIGHTING.to_dict() | {"kind": "sms"})


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert().rule = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SIGHTING.number = "+1"  # type: ignore[misc]
