"""Pure parts of the transport: record keys, line parsing, readable alert lines."""

from __future__ import annotations

import pytest

from engine.kafka_io import decode_alert, event_key, format_alert, parse_line


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"partner_id": "telco-a", "subscriber_id": "sub-9", "event_id": "e1"}, b"telco-a:sub-9"),
        ({"partner_id": "telco-a", "event_id": "e1"}, b"telco-a:e1"),  # no subscriber: call id
        ({"partner_id": "telco-a", "subscriber_id": "", "event_id": "e1"}, b"telco-a:e1"),
        ({"partner_id": "telco-a"}, b"telco-a"),
        ({"event_id": "e1"}, None),  # no partner: round-robin (it is dead-lettered anyway)
        ([1, 2], None),
        ("text", None),
    ],
)
def test_event_key(record: object, key: bytes | None) -> None:
    assert event_key(record) == key


def test_parse_line() -> None:
    assert parse_line(b'{"partner_id": "p", "event_id": "x"}') == (b"p:x", True)
    assert parse_line(b"CDR|p|garbage") == (None, False)
    assert parse_line(b"[1, 2]") == (None, False)
    assert parse_line(b'{"partner_id": "p", "event_id": "x"') == (None, False)


def test_format_alert_reads_like_a_log_line() -> None:
    alert = {
        "event_ts": "2026-01-01T10:20:30.000Z",
        "severity": "critical",
        "rule": "callee_scam_number",
        "partner_id": "telco-a",
        "subscriber_id": "sub-1",
        "matches": [
            {
                "field": "callee",
                "observed": "(800) 555-0199",
                "indicator": {"type": "phone", "value": "+18005550199", "sources": ["ftc", "x"]},
            }
        ],
    }
    line = format_alert(alert).plain
    assert line.startswith("2026-01-01 10:20:30 CRITICAL callee_scam_number")
    assert "telco-a/sub-1" in line
    assert "callee=(800) 555-0199 → phone +18005550199 [ftc, x]" in line
    # epoch milliseconds read the same
    alert["event_ts"] = 1767262830000
    assert format_alert(alert).plain.startswith("2026-01-01 10:20:30")


def test_format_alert_survives_a_partial_record() -> None:
    line = format_alert({"rule": "url_scam_url", "matches": ["junk", {"indicator": None}]}).plain
    assert "url_scam_url" in line
    assert "?/-" in line


def test_decode_alert() -> None:
    assert decode_alert(b'{"rule": "x"}') == {"rule": "x"}
    assert decode_alert(b"not json") is None
    assert decode_alert(b"[1]") is None
