"""alert.v1 building: grouping, deterministic ids, severity, every field of the contract."""

from __future__ import annotations

from typing import Any

from engine import __version__
from engine.core.alerts import alert_id, alert_key, build_alerts
from engine.core.events import event_ts_ms
from engine.core.models import (
    Indicator,
    IndicatorType,
    Match,
    Rule,
    Severity,
    SourcePosition,
    Stream,
    Verdict,
)
from engine.core.records import Alert
from engine.core.timestamps import format_rfc3339

ALERT_FIELDS = {
    "alert_id",
    "ts",
    "event_ts",
    "stream",
    "rule",
    "severity",
    "partner_id",
    "subscriber_id",
    "event_id",
    "matches",
    "event",
    "source",
    "engine",
}
SOURCE = SourcePosition(topic="web", partition=3, offset=42)
EMITTED = 1_764_000_000_123  # 2025-11-24T16:00:00.123Z

PHONE = Indicator(
    IndicatorType.PHONE,
    "+18005550199",
    sources=("feed-a", "feed-b"),
    severity=Severity.MEDIUM,
    confidence=80,
    tags=("tss",),
    valid_until=1_900_000_000_000,
)
DOMAIN = Indicator(IndicatorType.DOMAIN, "evil.example", severity=Severity.LOW)
CRITICAL_PHONE = Indicator(IndicatorType.PHONE, "+18005550100", severity=Severity.CRITICAL)


def web_record(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "w-1",
        "ts": "2025-11-24T15:59:59.5Z",
        "partner_id": "telco-a",
        "url": "https://evil.example/call-1-800-555-0199",
        "referrer": "https://evil.example/?tel=18005550199",
        "subscriber_id": "sub-9",
        "something_else": [1, 2],
    }
    record.update(extra)
    return record


def build(stream: Stream, record: dict[str, Any], matches: list[Match]) -> list[dict[str, Any]]:
    """The alerts' wire form (the ts read as the event decoder reads it)."""
    alerts = build_alerts(
        stream,
        record,
        Verdict(tuple(matches)),
        event_ts_ms=event_ts_ms(record["ts"]),
        source=SOURCE,
        indicator_version=17,
        emitted_ms=EMITTED,
    )
    assert all(isinstance(a, Alert) for a in alerts)
    return [a.to_dict() for a in alerts]


def number_in_url(field: str, observed: str) -> Match:
    return Match(Rule.URL_SCAM_NUMBER, field, observed, "+18005550199", PHONE)


def test_no_matches_no_alerts() -> None:
    assert build(Stream.WEB, web_record(), []) == []


def test_one_alert_per_rule_and_indicator_holding_every_match() -> None:
    matches = [
        number_in_url("url", "1-800-555-0199"),
        Match(Rule.HOST_SCAM_DOMAIN, "url", "https://evil.example/x", "evil.example", DOMAIN),
        number_in_url("referrer", "18005550199"),
    ]
    alerts = build(Stream.WEB, web_record(), matches)
    assert [(a["rule"], len(a["matches"])) for a in alerts] == [
        ("url_scam_number", 2),
        ("host_scam_domain", 1),
    ]
    fields = [m["field"] for m in alerts[0]["matches"]]
    assert fields == ["url", "referrer"]


def test_alert_has_exactly_the_contract_fields_and_values() -> None:
    record = web_record()
    [alert] = build(Stream.WEB, record, [number_in_url("url", "1-800-555-0199")])
    assert set(alert) == ALERT_FIELDS
    assert alert["ts"] == "2025-11-24T16:00:00.123Z"
    assert alert["event_ts"] == "2025-11-24T15:59:59.500Z"
    assert alert["stream"] == "web"
    assert alert["partner_id"] == "telco-a"
    assert alert["subscriber_id"] == "sub-9"
    assert alert["event_id"] == "w-1"
    assert alert["event"] == record  # the input as received, extra fields included
    assert alert["source"] == {"topic": "web", "partition": 3, "offset": 42}
    assert alert["engine"] == {"version": __version__, "indicator_version": 17}
    assert alert["matches"] == [
        {
            "field": "url",
            "observed": "1-800-555-0199",
            "normalized": "+18005550199",
            "indicator": {
                "type": "phone",
                "value": "+18005550199",
                "sources": ["feed-a", "feed-b"],
                "severity": "medium",
                "confidence": 80,
                "tags": ["tss"],
                "valid_until": format_rfc3339(1_900_000_000_000),
            },
        }
    ]


def test_epoch_ms_event_time_and_missing_subscriber() -> None:
    record = {"event_id": "c-1", "ts": 1_764_000_000_000, "partner_id": "p", "caller": "x"}
    match = Match(Rule.CALLER_SCAM_NUMBER, "caller", "8005550199", "+18005550199", PHONE)
    [alert] = build(Stream.CALLS, record, [match])
    assert alert["event_ts"] == "2025-11-24T16:00:00.000Z"
    assert alert["subscriber_id"] is None
    assert alert["stream"] == "calls"


def test_alert_id_is_deterministic_and_distinguishes_every_part() -> None:
    match = number_in_url("url", "1-800-555-0199")
    first = build(Stream.WEB, web_record(), [match])[0]["alert_id"]
    # a later re-emission (other time, other offset) of the same event: same id
    again = build_alerts(
        Stream.WEB,
        web_record(),
        Verdict((match,)),
        event_ts_ms=event_ts_ms(web_record()["ts"]),
        source=SourcePosition("web", 0, 999),
        indicator_version=18,
        emitted_ms=EMITTED + 60_000,
    )[0].alert_id
    assert first == again
    base: dict[str, Any] = {
        "stream": Stream.WEB,
        "partner_id": "telco-a",
        "event_id": "w-1",
        "rule": Rule.URL_SCAM_NUMBER,
        "type_": IndicatorType.PHONE,
        "value": "+18005550199",
    }
    assert alert_id(**base) == first
    changes: list[dict[str, Any]] = [
        {"stream": Stream.CALLS},
        {"partner_id": "telco-b"},
        {"event_id": "w-2"},
        {"rule": Rule.URL_SCAM_URL},
        {"type_": IndicatorType.PHONE_PREFIX},
        {"value": "+18005550198"},
    ]
    variants = {alert_id(**(base | change)) for change in changes}
    assert first not in variants
    assert len(variants) == len(changes)


def test_callee_rule_raises_severity_to_high_but_never_lowers() -> None:
    low = Indicator(IndicatorType.PHONE, "+18005550199", severity=Severity.LOW)
    record = {"event_id": "c", "ts": 1_764_000_000_000, "partner_id": "p"}
    callee = build(Stream.CALLS, record, [Match(Rule.CALLEE_SCAM_NUMBER, "callee", "x", "y", low)])
    caller = build(Stream.CALLS, record, [Match(Rule.CALLER_SCAM_NUMBER, "caller", "x", "y", low)])
    critical = build(
        Stream.CALLS,
        record,
        [Match(Rule.CALLEE_SCAM_NUMBER, "callee", "x", "y", CRITICAL_PHONE)],
    )
    assert callee[0]["severity"] == "high"
    assert caller[0]["severity"] == "low"
    assert critical[0]["severity"] == "critical"


def test_alert_key_is_partner_and_subscriber_else_fallback() -> None:
    assert alert_key("telco-a", "sub-9", "+18005550199") == b"telco-a:sub-9"
    assert alert_key("telco-a", None, "+18005550199") == b"telco-a:+18005550199"
    assert alert_key("telco-a", "", "ev-1") == b"telco-a:ev-1"
