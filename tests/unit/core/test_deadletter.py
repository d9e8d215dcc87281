"""deadletter.v1 building: raw kept as text or base64, source, reason, error, ts."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from engine.core import deadletter
from engine.core.deadletter import PROCESSING_ERROR, describe_exception
from engine.core.models import SourcePosition, Stream
from engine.core.records import DeadLetter
from engine.devtools.schemas import validate

SOURCE = SourcePosition(topic="calls", partition=2, offset=17)
EMITTED = 1_764_000_000_123  # 2025-11-24T16:00:00.123Z


def build_deadletter(stream: Stream, raw: bytes | None, **options: Any) -> dict[str, Any]:
    """The dead letter's wire form; it reads back as the same record."""
    letter = deadletter.build_deadletter(stream, raw, **options)
    assert DeadLetter.from_json(letter.to_json()) == letter
    return letter.to_dict()


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


def test_truncated_text_stays_text_cut_on_a_character_boundary() -> None:
    raw = ("é" * 100).encode()  # two bytes each: a cut at an odd byte splits one
    record = build_deadletter(
        Stream.CALLS,
        raw,
        reason="schema_violation",
        error="e",
        source=SOURCE,
        emitted_ms=EMITTED,
        max_raw_bytes=11,
    )
    assert "raw_encoding" not in record
    assert record["raw"] == "é" * 5  # 10 bytes: the 6th character would not fit whole
    assert record["raw_truncated"] is True
    assert record["raw_size"] == 200
    validate("deadletter.v1", record)


def test_truncated_binary_stays_base64_of_the_byte_prefix() -> None:
    raw = b"abc" + b"\xff" + b"d" * 100  # not UTF-8 as a whole, though its first bytes are
    record = build_deadletter(
        Stream.WEB,
        raw,
        reason="invalid_utf8",
        error="e",
        source=SOURCE,
        emitted_ms=EMITTED,
        max_raw_bytes=3,
    )
    assert record["raw_encoding"] == "base64"
    assert base64.b64decode(record["raw"]) == b"abc"
    assert (record["raw_truncated"], record["raw_size"]) == (True, 104)
    validate("deadletter.v1", record)


@pytest.mark.parametrize("limit", range(0, 12))
def test_truncated_text_never_exceeds_the_cap_at_any_cut(limit: int) -> None:
    raw = "aé€😀b".encode()  # characters of 1, 2, 3 and 4 bytes (11 bytes)
    record = build_deadletter(
        Stream.CALLS,
        raw,
        reason="invalid_json",
        error="e",
        source=SOURCE,
        emitted_ms=EMITTED,
        max_raw_bytes=limit,
    )
    assert "raw_encoding" not in record
    kept = record["raw"].encode()
    assert len(kept) <= limit
    assert raw.startswith(kept)
    assert len(kept) > limit - 4  # only the split character is dropped
    validate("deadletter.v1", record)
