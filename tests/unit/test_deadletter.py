"""deadletter.v1 building: raw kept as text or base64, source, reason, error, ts."""

from __future__ import annotations

import base64

from engine.core.deadletter import PROCESSING_ERROR, build_deadletter, describe_exception
from engine.core.models import SourcePosition, Stream

SOURCE = SourcePosition(topic="calls", partition=2, offset=17)
EMITTED = 1_764_000_000_123  # 2025-11-24T16:00:00.123Z


def test_utf8_raw_is_kept_as_text() -> None:
    record = build_deadletter(
        Stream.CALLS,
        b'{"event_id": "e1", "caller": "\xc3\xa9"',
        reason="invalid_json",
        error="record: JSON is malformed",
        source=SOURCE,
        emitted_ms=EMITTED,
    )
    assert record == {
        "reason": "invalid_json",
        "error": "record: JSON is malformed",
        "stream": "calls",
        "source": {"topic": "calls", "partition": 2, "offset": 17},
        "raw": '{"event_id": "e1", "caller": "é"',
        "ts": "2025-11-24T16:00:00.123Z",
    }


def test_non_utf8_raw_is_base64_and_says_so() -> None:
    raw = b"\xff\xfe{not text}"
    record = build_deadletter(
        Stream.WEB,
        raw,
        reason="invalid_utf8",
        error="record: not UTF-8 at byte 0",
        source=SOURCE,
        emitted_ms=EMITTED,
    )
    assert record["raw_encoding"] == "base64"
    assert base64.b64decode(record["raw"]) == raw
    assert record["stream"] == "web"


def test_missing_value_is_an_empty_text() -> None:
    record = build_deadletter(
        Stream.CALLS, None, reason="invalid_json", error="e", source=SOURCE, emitted_ms=EMITTED
    )
    assert record["raw"] == ""
    assert "raw_encoding" not in record


def test_exception_summary_names_type_message_and_place() -> None:
    def explode() -> None:
        raise KeyError("boom")

    try:
        explode()
    except KeyError as exc:
        text = describe_exception(exc)
    assert text.startswith("KeyError: 'boom' (at test_deadletter.py:")
    assert "explode" in text
    assert PROCESSING_ERROR == "processing_error"


def test_exception_without_traceback_is_just_its_text() -> None:
    assert describe_exception(ValueError("bad")) == "ValueError: bad"


def test_raw_longer_than_the_cap_keeps_a_prefix_and_says_so() -> None:
    raw = b"a" * 100
    record = build_deadletter(
        Stream.CALLS,
        raw,
        reason="invalid_json",
        error="e",
        source=SOURCE,
        emitted_ms=EMITTED,
        max_raw_bytes=10,
    )
    assert record["raw"] == "a" * 10
    assert record["raw_truncated"] is True
    assert record["raw_size"] == 100
