"""The output records (alert.v1, deadletter.v1, sighting.v1) as small immutable types that own
their wire form: ``to_dict`` / ``to_json`` render a record in exactly one place, and
``from_dict`` / ``from_json`` read one back (``alerts tail``, the demo, tests), as pySigma's
``SigmaRule.from_dict`` / ``to_dict`` do.

Frozen slotted dataclasses: one is made per alert, dead letter or sighting, never per clean
record, so their cost is off the hot path (per record, the decoder yields a plain tuple).
Optional fields of alert.v1 are left out of the JSON when ``None``. ``from_dict`` raises
:class:`RecordError` naming the field for a document that is not the record it should be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson

from engine.core.models import Indicator, SourcePosition, Stream
from engine.core.timestamps import format_rfc3339
from engine.errors import ScamwatchError

SightingKind = Literal["call", "page"]
_T = TypeVar("_T")


class RecordError(ScamwatchError):
    """A document that is not the record it should be; the message names the field."""


# --- reading helpers (from_dict) ---------------------------------------------------------------


def _obj(doc: object, where: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise RecordError(f"{where}: expected an object, got {type(doc).__name__}")
    return doc


def _str(doc: Mapping[str, Any], key: str, where: str = "") -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise RecordError(f"{where}{key}: expected a string, got {value!r}")
    return value


def _opt_str(doc: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{where}{key}: expected a string or null, got {value!r}")
    return value


def _int(doc: Mapping[str, Any], key: str, where: str = "") -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{where}{key}: expected an integer, got {value!r}")
    return value


def _number(doc: Mapping[str, Any], key: str, where: str = "") -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}{key}: expected a number, got {value!r}")
    return value


def _strs(doc: Mapping[str, Any], key: str, where: str = "") -> tuple[str, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{where}{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _time(doc: Mapping[str, Any], key: str, where: str = "") -> str:
    """An RFC 3339 string as written; epoch milliseconds (which the schemas allow too) are
    read as that moment in RFC 3339."""
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return format_rfc3339(value)
    return _str(doc, key, where)


def _loads(data: bytes, what: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"{what}: not JSON ({exc})") from None


def source_from_dict(doc: object, where: str = "source") -> SourcePosition:
    d = _obj(doc, where)
    return SourcePosition(
        _str(d, "topic", f"{where}."),
        _int(d, "partition", f"{where}."),
        _int(d, "offset", f"{where}."),
    )


# --- alert.v1 ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchedIndicator:
    """The indicator as an alert carries it (``matches[].indicator``)."""

    type: str
    value: str
    sources: tuple[str, ...]
    severity: str
    confidence: int
    tags: tuple[str, ...]
    valid_until: str | None  # RFC 3339, None when it never expires

    @classmethod
    def of(cls, ind: Indicator) -> MatchedIndicator:
        valid_until = None if ind.valid_until is None else format_rfc3339(ind.valid_until)
        return cls(
            str(ind.type),
            ind.value,
            ind.sources,
            str(ind.severity),
            ind.confidence,
            ind.tags,
            valid_until,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "value": self.value,
            "sources": list(self.sources),
            "severity": self.severity,
            "confidence": self.confidence,
            "tags": list(self.tags),
            "valid_until": self.valid_until,
        }

    @classmethod
    def from_dict(cls, doc: object, where: str = "indicator") -> MatchedIndicator:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(
            _str(d, "type", w),
            _str(d, "value", w),
            _strs(d, "sources", w),
            _str(d, "severity", w),
            _int(d, "confidence", w),
            _strs(d, "tags", w),
            _opt_str(d, "valid_until", w),
        )


@dataclass(frozen=True, slots=True)
class MatchDetail:
    """One event field that matched, with the indicator it matched (``matches[]``)."""

    field: str
    observed: str
    normalized: str
    indicator: MatchedIndicator

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "observed": self.observed,
            "normalized": self.normalized,
            "indicator": self.indicator.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: object, where: str = "match") -> MatchDetail:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(
            _str(d, "field", w),
            _str(d, "observed", w),
            _str(d, "normalized", w),
            MatchedIndicator.from_dict(d.get("indicator"), f"{where}.indicator"),
        )


@dataclass(frozen=True, slots=True)
class EngineStamp:
    """What produced an alert (``engine``)."""

    version: str
    indicator_version: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "indicator_version": self.indicator_version}

    @classmethod
    def from_dict(cls, doc: object, where: str = "engine") -> EngineStamp:
        d = _obj(doc, where)
        return cls(_str(d, "version", f"{where}."), _int(d, "indicator_version", f"{where}."))


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Alerts of the same key folded since the last one emitted (``suppressed``)."""

    count: int
    first_ts: str
    last_ts: str

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "first_ts": self.first_ts, "last_ts": self.last_ts}

    @classmethod
    def from_dict(cls, doc: object, where: str = "suppressed") -> Suppressed:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(_int(d, "count", w), _str(d, "first_ts", w), _str(d, "last_ts", w))


@dataclass(frozen=True, slots=True)
class Journey:
    """The exposure a ``victim_journey`` alert follows (``journey``)."""

    exposure_alert_id: str
    exposure_rule: str
    exposure_indicator: MatchedIndicator
    exposed_at: str
    seconds_since: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "exposure_alert_id": self.exposure_alert_id,
            "exposure_rule": self.exposure_rule,
            "exposure_indicator": self.exposure_indicator.to_dict(),
            "exposed_at": self.exposed_at,
            "seconds_since": self.seconds_since,
        }

    @classmethod
    def from_dict(cls, doc: object, where: str = "journey") -> Journey:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(
            _str(d, "exposure_alert_id", w),
            _str(d, "exposure_rule", w),
            MatchedIndicator.from_dict(d.get("exposure_indicator"), f"{w}exposure_indicator"),
            _str(d, "exposed_at", w),
            _number(d, "seconds_since", w),
        )


@dataclass(frozen=True, slots=True)
class Discovery:
    """A number called by several exposed subscribers (``discovery``)."""

    number: str
    subscribers: int
    first_seen: str
    last_seen: str
    window_s: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "subscribers": self.subscribers,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "window_s": self.window_s,
        }

    @classmethod
    def from_dict(cls, doc: object, where: str = "discovery") -> Discovery:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(
            _str(d, "number", w),
            _int(d, "subscribers", w),
            _str(d, "first_seen", w),
            _str(d, "last_seen", w),
            _int(d, "window_s", w),
        )


@dataclass(frozen=True, slots=True)
class Hunt:
    """The retro-hunt that found an alert (``hunt``)."""

    id: str
    since: str
    until: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "since": self.since, "until": self.until}

    @classmethod
    def from_dict(cls, doc: object, where: str = "hunt") -> Hunt:
        d = _obj(doc, where)
        w = f"{where}."
        return cls(_str(d, "id", w), _str(d, "since", w), _str(d, "until", w))


@dataclass(frozen=True, slots=True)
class Alert:
    """alert.v1. ``event`` is the input as received (or, in a slimmed alert too big for a
    Kafka record, ``{"truncated": true, "size": N}``); it is not copied again here."""

    alert_id: str
    ts: str
    event_ts: str | None
    stream: Stream
    rule: str
    severity: str
    partner_id: str
    subscriber_id: str | None
    event_id: str
    matches: tuple[MatchDetail, ...]
    event: Mapping[str, Any]
    source: SourcePosition
    engine: EngineStamp
    # round 2, absent from the JSON when None
    suppressed: Suppressed | None = None
    journey: Journey | None = None
    discovery: Discovery | None = None
    retro: bool | None = None
    hunt: Hunt | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "alert_id": self.alert_id,
            "ts": self.ts,
            "event_ts": self.event_ts,
            "stream": self.stream.value,
            "rule": self.rule,
            "severity": self.severity,
            "partner_id": self.partner_id,
            "subscriber_id": self.subscriber_id,
            "event_id": self.event_id,
            "matches": [m.to_dict() for m in self.matches],
            "event": self.event,
            "source": self.source.as_dict(),
            "engine": self.engine.to_dict(),
        }
        if self.suppressed is not None:
            doc["suppressed"] = self.suppressed.to_dict()
        if self.journey is not None:
            doc["journey"] = self.journey.to_dict()
        if self.discovery is not None:
            doc["discovery"] = self.discovery.to_dict()
        if self.retro is not None:
            doc["retro"] = self.retro
        if self.hunt is not None:
            doc["hunt"] = self.hunt.to_dict()
        return doc

    def to_json(self) -> bytes:
        """The record's bytes (raises ``orjson.JSONEncodeError`` when ``event`` nests deeper
        than orjson writes; see :mod:`engine.core.processor`)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: object) -> Alert:
        d = _obj(doc, "alert")
        stream = d.get("stream")
        if stream not in ("calls", "web"):
            raise RecordError(f"stream: expected calls or web, got {stream!r}")
        matches = d.get("matches")
        if not isinstance(matches, list):
            raise RecordError(f"matches: expected a list, got {matches!r}")
        retro = d.get("retro")
        if retro is not None and not isinstance(retro, bool):
            raise RecordError(f"retro: expected true or false, got {retro!r}")
        return cls(
            alert_id=_str(d, "alert_id"),
            ts=_time(d, "ts"),
            event_ts=None if d.get("event_ts") is None else _time(d, "event_ts"),
            stream=Stream(stream),
            rule=_str(d, "rule"),
            severity=_str(d, "severity"),
            partner_id=_str(d, "partner_id"),
            subscriber_id=_opt_str(d, "subscriber_id"),
            event_id=_str(d, "event_id"),
            matches=tuple(MatchDetail.from_dict(m, f"matches[{i}]") for i, m in enumerate(matches)),
            event=_obj(d.get("event"), "event"),
            source=source_from_dict(d.get("source")),
            engine=EngineStamp.from_dict(d.get("engine")),
            suppressed=_optional(Suppressed.from_dict, d.get("suppressed")),
            journey=_optional(Journey.from_dict, d.get("journey")),
            discovery=_optional(Discovery.from_dict, d.get("discovery")),
            retro=retro,
            hunt=_optional(Hunt.from_dict, d.get("hunt")),
        )

    @classmethod
    def from_json(cls, data: bytes) -> Alert:
        return cls.from_dict(_loads(data, "alert"))


def _optional(read: Callable[[object], _T], doc: object) -> _T | None:
    return None if doc is None else read(doc)


# --- deadletter.v1 -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """deadletter.v1: an input a worker could not process, with why and where from.

    ``raw`` is the input as UTF-8 text, or base64 when ``raw_encoding`` is ``"base64"``;
    ``raw_truncated`` / ``raw_size`` say a long one was cut to fit a Kafka record."""

    reason: str
    error: str
    stream: Stream
    source: SourcePosition
    raw: str
    ts: str
    raw_encoding: Literal["base64"] | None = None
    raw_truncated: bool = False
    raw_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "reason": self.reason,
            "error": self.error,
            "stream": self.stream.value,
            "source": self.source.as_dict(),
        }
        if self.raw_truncated:
            doc["raw_truncated"] = True
            doc["raw_size"] = self.raw_size
        doc["raw"] = self.raw
        if self.raw_encoding is not None:
            doc["raw_encoding"] = self.raw_encoding
        doc["ts"] = self.ts
        return doc

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: object) -> DeadLetter:
        d = _obj(doc, "deadletter")
        stream = d.get("stream")
        if stream not in ("calls", "web"):
            raise RecordError(f"stream: expected calls or web, got {stream!r}")
        encoding = d.get("raw_encoding")
        if encoding not in (None, "base64"):
            raise RecordError(f"raw_encoding: expected base64, got {encoding!r}")
        truncated = d.get("raw_truncated", False)
        if not isinstance(truncated, bool):
            raise RecordError(f"raw_truncated: expected true or false, got {truncated!r}")
        return cls(
            reason=_str(d, "reason"),
            error=_str(d, "error"),
            stream=Stream(stream),
            source=source_from_dict(d.get("source")),
            raw=_str(d, "raw"),
            ts=_str(d, "ts"),
            raw_encoding="base64" if encoding == "base64" else None,
            raw_truncated=truncated,
            raw_size=_int(d, "raw_size") if "raw_size" in d else None,
        )

    @classmethod
    def from_json(cls, data: bytes) -> DeadLetter:
        return cls.from_dict(_loads(data, "deadletter"))


# --- sighting.v1 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting:
    """sighting.v1: an unknown number seen by an exposed subscriber (``call``) or written on
    a scam page (``page``); keyed by ``number`` on the ``sightings`` topic."""

    number: str  # E.164
    kind: SightingKind
    partner_id: str
    subscriber_id: str | None
    event_id: str
    ts: str  # the event's time, RFC 3339
    exposure: str  # alert_id of the alert that exposed the subscriber / flagged the page

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "partner_id": self.partner_id,
            "subscriber_id": self.subscriber_id,
            "event_id": self.event_id,
            "ts": self.ts,
            "exposure": self.exposure,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def key(self) -> bytes:
        """The Kafka key: the number, so one number's sightings meet in one partition."""
        return self.number.encode()

    @classmethod
    def from_dict(cls, doc: object) -> Sighting:
        d = _obj(doc, "sighting")
        kind = d.get("kind")
        if kind not in ("call", "page"):
            raise RecordError(f"kind: expected call or page, got {kind!r}")
        return cls(
            number=_str(d, "number"),
            kind="call" if kind == "call" else "page",
            partner_id=_str(d, "partner_id"),
            subscriber_id=_opt_str(d, "subscriber_id"),
            event_id=_str(d, "event_id"),
            ts=_str(d, "ts"),
            exposure=_str(d, "exposure"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> Sighting:
        return cls.from_dict(_loads(data, "sighting"))
