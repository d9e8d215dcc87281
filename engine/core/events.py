"""Input records (call.v1, web.v1): decode raw Kafka bytes, validate against the contract.

Decoding is msgspec (fast, and its errors name the field). Anything that cannot be processed
raises :class:`DecodeError` whose ``reason`` is the stable dead-letter code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal, TypeVar

import msgspec

from engine.core.models import Stream
from engine.errors import DecodeError

INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
SCHEMA_VIOLATION = "schema_violation"
TOO_LARGE = "too_large"

# epoch milliseconds must fall in a sane window (2000-01-01 .. 2100-01-01)
_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 4_102_444_800_000
# RFC 3339 date-time as in schemas/*.json (fromisoformat alone also takes week dates, dates
# without a time, basic format...); an offset-less time is read as UTC
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)


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


def decode_call(raw: bytes, *, max_bytes: int | None = None) -> CallEvent:
    event = _decode(raw, _CALL_DECODER, max_bytes)
    _check_common(event.event_id, event.partner_id, event.ts)
    region = event.region
    if region is not None and not (len(region) == 2 and region.isascii() and region.isalpha()):
        raise DecodeError(SCHEMA_VIOLATION, f"region: {event.region!r} is not ISO 3166 alpha-2")
    return event


def decode_web(raw: bytes, *, max_bytes: int | None = None) -> WebEvent:
    event = _decode(raw, _WEB_DECODER, max_bytes)
    _check_common(event.event_id, event.partner_id, event.ts)
    if not event.url and not event.host:
        raise DecodeError(SCHEMA_VIOLATION, "url/host: one of url or host is required")
    return event


def decode_event(stream: Stream, raw: bytes, *, max_bytes: int | None = None) -> Event:
    if stream is Stream.CALLS:
        return decode_call(raw, max_bytes=max_bytes)
    return decode_web(raw, max_bytes=max_bytes)


def event_ts_ms(ts: str | int) -> int:
    """The event time in epoch milliseconds (``ts`` is RFC 3339 or epoch ms)."""
    if isinstance(ts, int):
        return ts
    parsed = datetime.fromisoformat(ts)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _decode(raw: bytes, decoder: msgspec.json.Decoder[_T], max_bytes: int | None) -> _T:
    if max_bytes is not None and len(raw) > max_bytes:
        raise DecodeError(TOO_LARGE, f"record is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        # msgspec passes invalid UTF-8 inside strings through, so check it first
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(INVALID_UTF8, f"record: not UTF-8 at byte {exc.start}") from None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise DecodeError(SCHEMA_VIOLATION, _field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise DecodeError(INVALID_JSON, f"record: {exc}") from None
    except RecursionError:
        # a hostile record nested ~1,000 levels deep: msgspec gives up, and so do we
        raise DecodeError(INVALID_JSON, "record: nested too deeply to read") from None


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


def _check_common(event_id: str, partner_id: str, ts: str | int) -> None:
    if not event_id:
        raise DecodeError(SCHEMA_VIOLATION, "event_id: must not be empty")
    if not partner_id:
        raise DecodeError(SCHEMA_VIOLATION, "partner_id: must not be empty")
    if isinstance(ts, int):
        if not _MIN_TS_MS <= ts <= _MAX_TS_MS:
            raise DecodeError(SCHEMA_VIOLATION, f"ts: {ts} is not epoch milliseconds in 2000-2100")
        return
    try:
        if not _RFC3339.fullmatch(ts):
            raise ValueError(ts)
        event_ts_ms(ts)
    except ValueError:
        raise DecodeError(SCHEMA_VIOLATION, f"ts: {ts!r} is not an RFC 3339 time") from None
