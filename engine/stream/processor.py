"""One input record in, what to send out: decode -> match -> alert.v1 records or a dead-letter.

Pure (no Kafka, no Redis): the worker's record handler calls :meth:`RecordProcessor.process`
and sends what it returns. Whatever the input, ``process`` returns an :class:`Outcome`; it never
raises, so a bad record can neither crash nor stall a worker.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import orjson

from engine.core.alerts import alert_key, build_alerts
from engine.core.deadletter import PROCESSING_ERROR, build_deadletter, describe_exception
from engine.core.events import CallEvent, decode_event, event_ts_ms
from engine.core.matcher import Matcher
from engine.core.models import SourcePosition, Stream, now_ms
from engine.errors import DecodeError

log = logging.getLogger(__name__)


def _float_or_text(text: str) -> float | str:
    """A JSON float as a float, or as its text when no double holds it (``1e400``)."""
    value = float(text)
    return value if math.isfinite(value) else text


# the alert's copy of a record orjson refuses: numbers kept as their text when no double
# holds them (see _event_copy)
_LENIENT_JSON = msgspec.json.Decoder(float_hook=_float_or_text)
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _event_copy(raw: bytes) -> Any:
    """The input record as the alert carries it (``event``).

    orjson reads nearly every record. The event decoder skips unknown fields without
    reading their numbers, so a record it accepted may hold one orjson refuses (``1e400``,
    a 400-digit integer): such a record is read by msgspec instead, a float no double holds
    kept as its text (``"1e400"``), an integer outside 64 bits made a float as orjson makes
    it, or its text when no double holds it either. The alert stays readable by any JSON
    parser, and the event is never lost to an extra field.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _fit_integers(_LENIENT_JSON.decode(raw))


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


OutcomeKind = Literal["matched", "clean", "deadletter"]

# an observed value kept in a slimmed alert (see RecordProcessor._encode_alert)
_MAX_OBSERVED = 2048


# Output and Outcome are not frozen: a frozen dataclass's __init__ costs ~4x (it sets each
# field through object.__setattr__), and one of each is made per record; treat them as
# read-only all the same


@dataclass(slots=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class Outcome:
    """What became of one input record."""

    stream: Stream
    kind: OutcomeKind
    outputs: tuple[Output, ...] = ()
    # (rule, severity) of each alert in ``outputs``
    alerts: tuple[tuple[str, str], ...] = ()
    # dead-letter reason, when ``kind`` is "deadletter"
    reason: str | None = None
    # event fields that were not matched because their value is no number/host
    unparsed: tuple[str, ...] = ()
    # event ts -> verdict, seconds (None when the record had no readable ts)
    latency_s: float | None = None


class RecordProcessor:
    """Turns input records into alert.v1 / deadletter.v1 records against the current matcher.

    ``matcher`` is called once per record, so a matcher swapped in by the follower is used
    from the next record on, and a record is matched wholly against one matcher.
    """

    def __init__(
        self,
        *,
        matcher: Callable[[], Matcher],
        alerts_topic: str,
        deadletter_topic: str,
        max_record_bytes: int | None = None,
        max_output_bytes: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._matcher = matcher
        self._alerts_topic = alerts_topic
        self._deadletter_topic = deadletter_topic
        self._max_bytes = max_record_bytes
        self._max_output = max_output_bytes
        self._clock = clock

    def process(
        self, stream: Stream, raw: bytes | None, key: bytes | None, source: SourcePosition
    ) -> Outcome:
        now = self._clock()
        try:
            event = decode_event(stream, raw if raw is not None else b"", max_bytes=self._max_bytes)
        except DecodeError as exc:
            return self._deadletter(stream, raw, key, source, exc.reason, exc.error, now, None)
        latency: float | None = None
        try:
            latency = max(0.0, (now - event_ts_ms(event.ts)) / 1000)
            matcher = self._matcher()
            if isinstance(event, CallEvent):
                verdict = matcher.match_call(event, now)
            else:
                verdict = matcher.match_web(event, now)
            if not verdict.matches:
                return Outcome(stream, "clean", unparsed=verdict.unparsed, latency_s=latency)
            # the alert carries the input as received, extra fields included
            record = _event_copy(raw or b"")
            alerts = build_alerts(
                stream,
                record,
                verdict,
                source=source,
                indicator_version=matcher.version,
                emitted_ms=now,
            )
            alert_kafka_key = alert_key(event.partner_id, event.subscriber_id, event.event_id)
            raw_size = len(raw or b"")
            outputs = tuple(
                Output(self._alerts_topic, alert_kafka_key, self._encode_alert(a, raw_size))
                for a in alerts
            )
            rules = tuple((str(a["rule"]), str(a["severity"])) for a in alerts)
        except Exception as exc:
            # a bug or a surprise in matching must not stop the stream: keep the record
            log.exception("processing failed for %s %s", stream.value, source.as_dict())
            error = describe_exception(exc)
            return self._deadletter(stream, raw, key, source, PROCESSING_ERROR, error, now, latency)
        if not outputs:
            return Outcome(stream, "clean", unparsed=verdict.unparsed, latency_s=latency)
        return Outcome(
            stream,
            "matched",
            outputs=outputs,
            alerts=rules,
            unparsed=verdict.unparsed,
            latency_s=latency,
        )

    def _encode_alert(self, alert: dict[str, Any], raw_size: int) -> bytes:
        try:
            value: bytes | None = orjson.dumps(alert)
        except orjson.JSONEncodeError:
            # the event copy nests deeper than orjson writes (254 levels; it reads 1024):
            # keep the detection, drop the copy as for an oversized alert
            value = None
        if value is not None and (self._max_output is None or len(value) <= self._max_output):
            return value
        # too big for a Kafka record (or unwritable): keep the detection, drop the bulky
        # copies of the input
        slim = dict(alert)
        slim["event"] = {"truncated": True, "size": raw_size}
        slim["matches"] = [
            {**m, "observed": str(m.get("observed", ""))[:_MAX_OBSERVED]} for m in alert["matches"]
        ]
        value = orjson.dumps(slim)
        if self._max_output is not None and len(value) > self._max_output:
            raise ValueError(f"alert is {len(value)} bytes even without the event copy")
        return value

    def _deadletter(
        self,
        stream: Stream,
        raw: bytes | None,
        key: bytes | None,
        source: SourcePosition,
        reason: str,
        error: str,
        now: int,
        latency: float | None,
    ) -> Outcome:
        record = build_deadletter(
            stream, raw, reason=reason, error=error, source=source, emitted_ms=now
        )
        value = orjson.dumps(record)
        if self._max_output is not None and len(value) > self._max_output:
            # JSON escaping can grow text up to 6x (control characters): keep a prefix
            record = build_deadletter(
                stream,
                raw,
                reason=reason,
                error=error,
                source=source,
                emitted_ms=now,
                max_raw_bytes=self._max_output // 8,
            )
            value = orjson.dumps(record)
        output = Output(self._deadletter_topic, key, value)
        return Outcome(stream, "deadletter", outputs=(output,), reason=reason, latency_s=latency)
