"""Decoding call.v1/web.v1: good records pass, each bad one has a stable reason and names
the field."""

from __future__ import annotations

import sys

import orjson
import pytest

from engine.core.events import MAX_NESTING, decode_call, decode_web, event_ts_ms
from engine.errors import DecodeError

CALL = {
    "event_id": "c-1",
    "ts": "2026-11-28T12:00:00Z",
    "partner_id": "telco-a",
    "caller": "+1 (800) 555-0199",
    "callee": "anonymous",
}


def _raw(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_good_call_with_extra_fields_is_kept() -> None:
    event = decode_call(_raw({**CALL, "vendor_extra": {"x": 1}, "duration_s": 12}))
    assert event.caller == "+1 (800) 555-0199"
    assert event.callee == "anonymous"  # withheld is not a schema error
    assert event.duration_s == 12.0


def test_epoch_ms_and_rfc3339_give_the_same_time() -> None:
    assert event_ts_ms("2026-11-28T12:00:00Z") == 1_795_867_200_000
    assert event_ts_ms("2026-11-28T13:00:00+01:00") == 1_795_867_200_000
    assert decode_call(_raw({**CALL, "ts": 1_795_867_200_000})).ts == 1_795_867_200_000


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b'{"event_id": "x",', "invalid_json", "record"),
        (b"\xff\xfe{}", "invalid_utf8", "record"),
        (_raw({k: v for k, v in CALL.items() if k != "callee"}), "schema_violation", "callee"),
        (_raw({**CALL, "caller": 18005550199}), "schema_violation", "caller"),
        (_raw({**CALL, "ts": "yesterday"}), "schema_violation", "ts"),
        (_raw({**CALL, "ts": 12}), "schema_violation", "ts"),
        (_raw({**CALL, "event_id": ""}), "schema_violation", "event_id"),
        (_raw({**CALL, "direction": "sideways"}), "schema_violation", "direction"),
        (_raw({**CALL, "region": "USA"}), "schema_violation", "region"),
        (_raw([CALL]), "schema_violation", "record"),
    ],
)
def test_bad_call_records(raw: bytes, reason: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_call(raw)
    assert info.value.reason == reason
    assert info.value.error.startswith(f"{field}:")


def test_too_large() -> None:
    with pytest.raises(DecodeError) as info:
        decode_call(_raw({**CALL, "pad": "x" * 5000}), max_bytes=4096)
    assert info.value.reason == "too_large"


def test_web_needs_url_or_host() -> None:
    base = {"event_id": "w-1", "ts": 1_795_867_200_000, "partner_id": "isp-b"}
    assert decode_web(_raw({**base, "host": "evil.example"})).host == "evil.example"
    assert decode_web(_raw({**base, "url": "http://evil.example/"})).url == "http://evil.example/"
    with pytest.raises(DecodeError) as info:
        decode_web(_raw(base))
    assert info.value.reason == "schema_violation"
    assert "url" in info.value.error and "host" in info.value.error
    with pytest.raises(DecodeError) as info:
        decode_web(_raw({**base, "host": "a.example", "kind": "ftp"}))
    assert info.value.error.startswith("kind:")


def test_deeply_nested_record_is_invalid_json_not_a_crash() -> None:
    raw = b'{"a":' * 5000 + b"1" + b"}" * 5000
    with pytest.raises(DecodeError) as info:
        decode_call(raw)
    assert info.value.reason == "invalid_json"
    assert "nested" in info.value.error


def _nested(levels: int) -> bytes:
    """A valid call whose extra field makes the record ``levels`` deep (the call is 1)."""
    inner = b"[" * (levels - 1) + b"1" + b"]" * (levels - 1)
    return _raw(CALL)[:-1] + b',"x":' + inner + b"}"


def test_nesting_is_refused_above_a_fixed_limit_naming_it() -> None:
    decode_call(_nested(MAX_NESTING))
    with pytest.raises(DecodeError) as info:
        decode_call(_nested(MAX_NESTING + 1))
    assert info.value.reason == "invalid_json"
    assert f"nested deeper than {MAX_NESTING} levels" in info.value.error
    # objects count as arrays do
    deep_objects = b'{"a":' * MAX_NESTING + b"1" + b"}" * MAX_NESTING
    with pytest.raises(DecodeError):
        decode_call(_raw(CALL)[:-1] + b',"x":' + deep_objects + b"}")


def test_brackets_inside_strings_do_not_nest() -> None:
    # 800 brackets in one string, with escaped quotes and backslashes before its end
    text = b'"' + b"[{" * 400 + rb"\"]" + b'"'
    event = decode_call(_raw(CALL)[:-1] + b',"x":[' + text + b"]}")
    assert event.event_id == CALL["event_id"]


def _accepts(raw: bytes) -> bool:
    try:
        decode_call(raw)
    except DecodeError:
        return False
    return True


def test_the_nesting_verdict_does_not_depend_on_the_stack_it_is_read_from() -> None:
    # msgspec's own limit is the recursion limit less the frames in use: the same record
    # must get the same verdict in a worker, in `scan` and deep inside a test runner
    def at_depth(frames: int) -> tuple[bool, bool]:
        if frames:
            return at_depth(frames - 1)
        return _accepts(_nested(MAX_NESTING)), _accepts(_nested(MAX_NESTING + 1))

    assert at_depth(0) == (True, False)
    assert at_depth(sys.getrecursionlimit() - MAX_NESTING - 200) == (True, False)
