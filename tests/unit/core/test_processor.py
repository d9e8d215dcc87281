"""The per-record step: decode -> match -> alert.v1 records, or a dead-letter; never raises."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from engine.core.events import MAX_NESTING, CallEvent, WebEvent
from engine.core.matcher import Matcher
from engine.core.models import (
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    SourcePosition,
    Stream,
    Verdict,
)
from engine.core.processor import Outcome, RecordProcessor
from engine.devtools.schemas import validate

NOW = 1_764_000_000_000
SCAM = Indicator(IndicatorType.PHONE, "+18005550199", sources=("feed",))
EVIL = Indicator(IndicatorType.DOMAIN, "evil.example", sources=("feed",))
SNAPSHOT = IndicatorSnapshot(version=7, indicators=(SCAM, EVIL))
SOURCE = SourcePosition("calls-topic", 1, 99)


def processor(matcher: Matcher | None = None, max_bytes: int = 4096) -> RecordProcessor:
    current = matcher or Matcher.build(SNAPSHOT)
    return RecordProcessor(
        matcher=lambda: current,
        alerts_topic="alerts-t",
        deadletter_topic="dead-t",
        max_record_bytes=max_bytes,
        clock=lambda: NOW,
    )


def call(**fields: Any) -> bytes:
    record: dict[str, Any] = {
        "event_id": "e1",
        "ts": NOW - 1500,
        "partner_id": "telco",
        "caller": "+12025550100",
        "callee": "1 (800) 555-0199",
        "subscriber_id": "sub-9",
    }
    record.update(fields)
    return orjson.dumps({k: v for k, v in record.items() if v is not None})


def deadletter_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.kind == "deadletter"
    (out,) = outcome.outputs
    assert out.topic == "dead-t"
    record = orjson.loads(out.value)
    assert isinstance(record, dict)
    return record


def test_matched_call_yields_an_alert_keyed_by_partner_and_subscriber() -> None:
    outcome = processor().process(Stream.CALLS, call(), b"in-key", SOURCE)
    assert outcome.kind == "matched"
    assert outcome.alerts == (("callee_scam_number", "high"),)
    assert outcome.latency_s == 1.5
    (out,) = outcome.outputs
    assert out.topic == "alerts-t"
    assert out.key == b"telco:sub-9"
    alert = orjson.loads(out.value)
    assert alert["rule"] == "callee_scam_number"
    assert alert["event_id"] == "e1"
    assert alert["source"] == {"topic": "calls-topic", "partition": 1, "offset": 99}
    assert alert["engine"]["indicator_version"] == 7
    assert alert["event"]["callee"] == "1 (800) 555-0199"


def test_same_event_gives_the_same_alert_id() -> None:
    first = processor().process(Stream.CALLS, call(), None, SOURCE)
    again = processor().process(Stream.CALLS, call(), None, SourcePosition("calls-topic", 0, 5))
    assert (
        orjson.loads(first.outputs[0].value)["alert_id"]
        == orjson.loads(again.outputs[0].value)["alert_id"]
    )


def test_clean_event_produces_nothing() -> None:
    outcome = processor().process(Stream.CALLS, call(callee="+12025550111"), b"k", SOURCE)
    assert outcome.kind == "clean"
    assert outcome.outputs == ()


def test_withheld_caller_is_processed_and_reported_unparsed() -> None:
    outcome = processor().process(Stream.CALLS, call(caller="anonymous"), b"k", SOURCE)
    assert outcome.kind == "matched"
    assert "caller" in outcome.unparsed


def test_web_event_matches_a_subdomain_and_falls_back_to_event_id_key() -> None:
    raw = orjson.dumps(
        {"event_id": "w1", "ts": NOW, "partner_id": "isp", "host": "login.evil.example"}
    )
    outcome = processor().process(Stream.WEB, raw, None, SOURCE)
    assert outcome.kind == "matched"
    assert outcome.alerts == (("host_scam_domain", "high"),)
    assert outcome.outputs[0].key == b"isp:w1"


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"{not json", "invalid_json", "record"),
        (b"\xff\xfe\x00", "invalid_utf8", "record"),
        (call(callee=None), "schema_violation", "callee"),
        (call(caller=12), "schema_violation", "caller"),
        (b"", "invalid_json", "record"),
        (b"[1, 2]", "schema_violation", "record"),
    ],
)
def test_bad_input_is_dead_lettered_with_reason_and_field(
    raw: bytes, reason: str, field: str
) -> None:
    outcome = processor().process(Stream.CALLS, raw, b"in-key", SOURCE)
    record = deadletter_of(outcome)
    assert outcome.reason == reason
    assert outcome.outputs[0].key == b"in-key"  # keyed like the input
    assert record["reason"] == reason
    assert record["error"].startswith(field)
    assert record["stream"] == "calls"
    assert record["source"] == {"topic": "calls-topic", "partition": 1, "offset": 99}
    if record.get("raw_encoding") == "base64":
        assert base64.b64decode(record["raw"]) == raw
    else:
        assert record["raw"] == raw.decode()


def test_missing_value_is_dead_lettered() -> None:
    outcome = processor().process(Stream.WEB, None, None, SOURCE)
    assert deadletter_of(outcome)["reason"] == "invalid_json"


def test_too_large_record_is_dead_lettered() -> None:
    raw = call(padding="x" * 5000)
    outcome = processor(max_bytes=2048).process(Stream.CALLS, raw, None, SOURCE)
    record = deadletter_of(outcome)
    assert record["reason"] == "too_large"
    assert record["raw"] == raw.decode()


class ExplodingMatcher(Matcher):
    def match_call(self, event: CallEvent, at_ms: int) -> Verdict:
        raise RuntimeError("index corrupted")

    def match_web(self, event: WebEvent, at_ms: int) -> Verdict:
        raise RuntimeError("index corrupted")


def test_unexpected_error_in_matching_is_a_processing_error_dead_letter() -> None:
    broken = ExplodingMatcher(SNAPSHOT, "US")
    outcome = processor(broken).process(Stream.CALLS, call(), b"k", SOURCE)
    record = deadletter_of(outcome)
    assert record["reason"] == "processing_error"
    assert "RuntimeError: index corrupted" in record["error"]
    assert "match_call" in record["error"]  # where it was raised


def test_each_record_uses_the_matcher_current_at_its_turn() -> None:
    matchers = [Matcher.build(IndicatorSnapshot(version=1)), Matcher.build(SNAPSHOT)]
    proc = RecordProcessor(
        matcher=lambda: matchers[0],
        alerts_topic="a",
        deadletter_topic="d",
        clock=lambda: NOW,
    )
    assert proc.process(Stream.CALLS, call(), None, SOURCE).kind == "clean"
    matchers.pop(0)  # the follower swapped in a new matcher
    assert proc.process(Stream.CALLS, call(), None, SOURCE).kind == "matched"


def limited(max_output: int) -> RecordProcessor:
    current = Matcher.build(SNAPSHOT)
    return RecordProcessor(
        matcher=lambda: current,
        alerts_topic="alerts-t",
        deadletter_topic="dead-t",
        max_record_bytes=1_000_000,
        max_output_bytes=max_output,
        clock=lambda: NOW,
    )


def test_an_alert_too_big_for_kafka_drops_its_copy_of_the_event() -> None:
    raw = call(notes="x" * 200_000)
    outcome = limited(100_000).process(Stream.CALLS, raw, None, SOURCE)
    assert outcome.kind == "matched"
    (out,) = outcome.outputs
    assert len(out.value) <= 100_000
    alert = orjson.loads(out.value)
    assert alert["event"] == {"truncated": True, "size": len(raw)}
    assert alert["rule"] == "callee_scam_number"


def test_a_dead_letter_too_big_for_kafka_keeps_a_prefix_of_raw() -> None:
    raw = b"\x01" * 300_000  # UTF-8, but every byte escapes to six in JSON
    outcome = limited(100_000).process(Stream.CALLS, raw, b"k", SOURCE)
    record = deadletter_of(outcome)
    assert len(outcome.outputs[0].value) <= 100_000
    assert record["raw_truncated"] is True
    assert record["raw_size"] == 300_000
    assert record["reason"] == "invalid_json"


def _with_extra(extra: bytes) -> bytes:
    """A matching call with an unknown extra field ``x`` written as raw JSON text."""
    return call()[:-1] + b',"x":' + extra + b"}"


@pytest.mark.parametrize(
    ("extra", "copied"),
    [
        # numbers no double holds: the event decoder skips them, orjson refuses them
        (b"1e400", "1e400"),
        (b"-1e999", "-1e999"),
        (b'[1.5, {"y": 1E+400}, 2]', [1.5, {"y": "1E+400"}, 2]),
        (b"1" * 400, "1" * 400),
        # what orjson reads is copied as orjson reads it
        (b"123456789012345678901234567890", 1.2345678901234568e29),
        (b"1e-400", 0.0),
    ],
)
def test_odd_numbers_in_extra_fields_never_cost_the_alert(extra: bytes, copied: object) -> None:
    raw = _with_extra(extra)
    outcome = processor().process(Stream.CALLS, raw, None, SOURCE)
    assert outcome.kind == "matched", outcome.reason
    (out,) = outcome.outputs
    alert = orjson.loads(out.value)  # and the alert stays readable by a strict parser
    validate("alert.v1", alert)
    assert alert["event"]["x"] == copied
    assert alert["event"]["callee"] == "1 (800) 555-0199"
    assert alert["event_id"] == "e1"


def test_a_record_at_the_nesting_limit_alerts_with_its_whole_copy_one_level_more_is_dead() -> None:
    # the call object is level 1, so its extra field holds MAX_NESTING - 1 levels
    inner = b"[" * (MAX_NESTING - 1) + b"1" + b"]" * (MAX_NESTING - 1)
    outcome = processor().process(Stream.CALLS, _with_extra(inner), None, SOURCE)
    assert outcome.kind == "matched", outcome.reason
    (out,) = outcome.outputs
    alert = orjson.loads(out.value)
    validate("alert.v1", alert)
    assert alert["event"]["x"] == orjson.loads(inner)  # orjson writes it: nothing dropped
    deeper = processor().process(Stream.CALLS, _with_extra(b"[" + inner + b"]"), None, SOURCE)
    assert deeper.kind == "deadletter"
    assert deeper.reason == "invalid_json"
    (dead,) = deeper.outputs
    assert f"deeper than {MAX_NESTING}" in orjson.loads(dead.value)["error"]
