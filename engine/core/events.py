"""Input records (call.v1, web.v1): decode raw Kafka bytes, validate against the contract.

Decoding is msgspec (fast, and its errors name the field). Anything that cannot be processed
raises :class:`DecodeError` whose ``reason`` is the stable dead-letter code.

Decode once. :func:`decode_record` is the decoder of the worker and ``scan``
(:func:`decode_call` / :func:`decode_web`, which the matcher benchmark times, run the same
code and drop the ts): one msgspec pass over the raw bytes gives the typed event, whose
``ts`` is read (validated and turned into epoch ms) once, here, and carried to the latency
metric and the alert's ``event_ts``. The copy of the input an alert carries (``event``, the
record as received, unknown fields included) is taken from the same bytes, and only when the
record matched (:func:`event_copy`, once).

Why not one generic parse that yields both (``orjson.loads`` / ``msgspec`` to a dict, then
``msgspec.convert`` to the typed event)? Clean records are ~98 % of traffic and need no
copy, and the generic parse costs them more than it saves the matched few. Measured on the
sample traffic (ns per record, best of 5, same session): typed decode 616 (call) / 554
(web); generic parse + convert 1628 / 1174 (msgspec) and 1986 / 1392 (orjson). One parse of
every record would add ~0.6-1.0 us to each of them; reading the copy of a matched record
adds ~1 us to 2 % of them (~20 ns a record on average). The typed decode skips the fields it
does not know (msgspec keeps no "extra" fields), so a matched record's copy needs its bytes
read again; it is never read for a clean one.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, TypeVar

import msgspec
import orjson

from engine.core.models import Stream
from engine.core.timestamps import MAX_EPOCH_MS, MIN_EPOCH_MS, parse_rfc3339
from engine.errors import DecodeError

INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
SCHEMA_VIOLATION = "schema_violation"
TOO_LARGE = "too_large"

# a record nests at most this many levels of objects and arrays; deeper is invalid_json. A
# fixed limit, so a record gets the same verdict wherever it is read: msgspec's own limit is
# Python's recursion limit less the frames already on the stack, which differs between the
# worker, `scan` and a test process. 128 is far above any real record and below what orjson
# writes (254 levels), so an accepted record's copy always fits in its alert.
MAX_NESTING = 128
# a JSON string (skipped whole: brackets inside it do not nest) or one structural bracket
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class CallEvent(msgspec.Struct, frozen=True, kw_only=True):
    """call.v1. Unknown extra fields are ignored (and kept in the raw record)."""

    event_id: str
    ts: str | int
    partner_id: str
    caller: str
    callee: str
    region: str | None = None
    subscriber_id: str | None = None
    direction: Literal["inbound", "outbound"] | None = None
    duration_s: float | None = None
    attestation: Literal["A", "B", "C"] | None = None


class WebEvent(msgspec.Struct, frozen=True, kw_only=True):
    """web.v1: at least one of ``url`` and ``host``."""

    event_id: str
    ts: str | int
    partner_id: str
    url: str | None = None
    host: str | None = None
    referrer: str | None = None
    kind: Literal["http", "dns", "tls"] | None = None
    subscriber_id: str | None = None


Event = CallEvent | WebEvent
_T = TypeVar("_T")

_CALL_DECODER = msgspec.json.Decoder(CallEvent)
_WEB_DECODER = msgspec.json.Decoder(WebEvent)


# what decode_record yields: the typed event and its ts in epoch ms. A plain tuple, not an
# object: one is made per record on the hot path, and even a __slots__ class costs more to
# build (~170 ns) than reading the ts again would
DecodedRecord = tuple[Event, int]


def decode_record(stream: Stream, raw: bytes, *, max_bytes: int | None = None) -> DecodedRecord:
    """The record of ``stream`` decoded and validated, and its ``ts`` in epoch ms (raises
    :class:`DecodeError`). A matched record's copy for the alert: :func:`event_copy`."""
    if stream is Stream.CALLS:
        return _decode_call(raw, max_bytes)
    return _decode_web(raw, max_bytes)


def decode_call(raw: bytes, *, max_bytes: int | None = None) -> CallEvent:
    return _decode_call(raw, max_bytes)[0]


def decode_web(raw: bytes, *, max_bytes: int | None = None) -> WebEvent:
    return _decode_web(raw, max_bytes)[0]


def event_ts_ms(ts: str | int) -> int:
    """The event time in epoch milliseconds (``ts`` is RFC 3339 or epoch ms)."""
    if isinstance(ts, int):
        return ts
    return parse_rfc3339(ts)


def _decode_call(raw: bytes, max_bytes: int | None) -> tuple[CallEvent, int]:
    event = _decode(raw, _CALL_DECODER, max_bytes)
    ts_ms = _check_common(event.event_id, event.partner_id, event.ts)
    region = event.region
    if region is not None and not (len(region) == 2 and region.isascii() and region.isalpha()):
        raise DecodeError(SCHEMA_VIOLATION, f"region: {event.region!r} is not ISO 3166 alpha-2")
    return event, ts_ms


def _decode_web(raw: bytes, max_bytes: int | None) -> tuple[WebEvent, int]:
    event = _decode(raw, _WEB_DECODER, max_bytes)
    ts_ms = _check_common(event.event_id, event.partner_id, event.ts)
    if not event.url and not event.host:
        raise DecodeError(SCHEMA_VIOLATION, "url/host: one of url or host is required")
    return event, ts_ms


def _decode(raw: bytes, decoder: msgspec.json.Decoder[_T], max_bytes: int | None) -> _T:
    if max_bytes is not None and len(raw) > max_bytes:
        raise DecodeError(TOO_LARGE, f"record is {len(raw)} bytes, the limit is {max_bytes}")
    # msgspec passes invalid UTF-8 inside strings through, so check it first; ASCII (most
    # records) is UTF-8 already, and isascii() is far cheaper than building the text
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(INVALID_UTF8, f"record: not UTF-8 at byte {exc.start}") from None
    if _nests_deeper(raw, MAX_NESTING):
        raise DecodeError(
            INVALID_JSON, f"record: nested deeper than {MAX_NESTING} levels of objects and arrays"
        )
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise DecodeError(SCHEMA_VIOLATION, _field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise DecodeError(INVALID_JSON, f"record: {exc}") from None
    except RecursionError:
        # the stack is nearly used up already (MAX_NESTING keeps records far from it)
        raise DecodeError(INVALID_JSON, "record: nested too deeply to read") from None


def _nests_deeper(raw: bytes, limit: int) -> bool:
    """True when ``raw`` opens more than ``limit`` objects/arrays inside one another. Two
    ``bytes.count`` calls settle nearly every record (fewer brackets than the limit in all);
    only the others are scanned."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for token in _STRUCTURE.findall(raw):
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _field_message(msg: str) -> str:
    """msgspec says "Expected `str`, got `int` - at `$.caller`"; lead with the field."""
    text, sep, path = msg.rpartition(" - at `")
    if sep:
        field = path.rstrip("`").removeprefix("$.") or "record"
        return f"{field}: {text}"
    if msg.startswith("Object missing required field `"):
        field = msg.split("`")[1]
        return f"{field}: required field is missing"
    return f"record: {msg}"


def _check_common(event_id: str, partner_id: str, ts: str | int) -> int:
    """Raise on an empty id or a ts that is no time; else the ts in epoch milliseconds."""
    if not event_id:
        raise DecodeError(SCHEMA_VIOLATION, "event_id: must not be empty")
    if not partner_id:
        raise DecodeError(SCHEMA_VIOLATION, "partner_id: must not be empty")
    if isinstance(ts, int):
        if not MIN_EPOCH_MS <= ts <= MAX_EPOCH_MS:  # is_epoch_ms, inlined: once per record
            raise DecodeError(SCHEMA_VIOLATION, f"ts: {ts} is not epoch milliseconds in 2000-2100")
        return ts
    try:
        return parse_rfc3339(ts)
    except ValueError:
        raise DecodeError(SCHEMA_VIOLATION, f"ts: {ts!r} is not an RFC 3339 time") from None


# --- the alert's copy of the record ---------------------------------------------------------


def _float_or_text(text: str) -> float | str:
    """A JSON float as a float, or as its text when no double holds it (``1e400``)."""
    value = float(text)
    return value if math.isfinite(value) else text


# the alert's copy of a record orjson refuses: numbers kept as their text when no double
# holds them (see event_copy)
_LENIENT_JSON = msgspec.json.Decoder(float_hook=_float_or_text)
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def event_copy(raw: bytes) -> dict[str, Any]:
    """The input record as the alert carries it (``event``), from the bytes
    :func:`decode_record` accepted (so a JSON object); read for matched records only.

    orjson reads nearly every record. The event decoder skips unknown fields without
    reading their numbers, so a record it accepted may hold one orjson refuses (``1e400``,
    a 400-digit integer): such a record is read by msgspec instead, a float no double holds
    kept as its text (``"1e400"``), an integer outside 64 bits made a float as orjson makes
    it, or its text when no double holds it either. The alert stays readable by any JSON
    parser, and the event is never lost to an extra field.
    """
    try:
        copy = orjson.loads(raw)
    except orjson.JSONDecodeError:
        copy = _fit_integers(_LENIENT_JSON.decode(raw))
    if not isinstance(copy, dict):
        raise TypeError(f"an event is a JSON object, not {type(copy).__name__}")
    return copy


def _fit_integers(value: Any) -> Any:
    """``value`` with every integer outside 64 bits as orjson.loads reads it (a float), or as
    its text when no double holds it."""
    if isinstance(value, dict):
        return {k: _fit_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fit_integers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return str(value)
    return value
