"""One input record in, what to send out: decode -> match -> alert.v1 records or a dead-letter.

The record is decoded once (:func:`engine.core.events.decode_record`: the typed event and its
``ts`` in ms; the alert's copy of the input only when it matched), and each record out is a
typed :class:`~engine.core.records.Alert` / :class:`~engine.core.records.DeadLetter` rendered
by its own ``to_json``.

The live worker's stateful side (:class:`Protection`, absent in ``scan`` and ``hunt``, which are
forensic): a call of a subscriber exposed by a web alert (:mod:`engine.core.journey`) adds a
``victim_journey`` alert when its other party is a scam number, or a sighting when that party
is unknown; a web alert on a domain/URL indicator sights the unknown numbers in the URL; the
alerts then pass the suppression table (:mod:`engine.core.suppression`), and the web alerts
emitted expose their subscriber at once.

Pure (no Kafka, no Redis): the worker's record handler calls :meth:`RecordProcessor.process`
and sends what it returns. Whatever the input, ``process`` returns an :class:`Outcome`; it never
raises, so a bad record can neither crash nor stall a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from engine.core.alerts import alert_key, build_alerts
from engine.core.deadletter import PROCESSING_ERROR, build_deadletter, describe_exception
from engine.core.events import CallEvent, WebEvent, decode_record, event_copy
from engine.core.journey import (
    ExposureTable,
    call_sighting,
    journey_alert,
    other_party_field,
    page_alert,
    page_sightings,
)
from engine.core.matcher import Matcher, numbers_in_text
from engine.core.models import Rule, SourcePosition, Stream, Verdict, now_ms
from engine.core.normalize import normalize_phone
from engine.core.records import Alert, DeadLetter, Hunt, Sighting
from engine.core.suppression import SuppressionTable
from engine.errors import DecodeError, NormalizationError

log = logging.getLogger(__name__)


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
    # the records in ``outputs``, typed: the alerts (as built, before any slimming) or the
    # dead letter (as sent)
    alert_records: tuple[Alert, ...] = ()
    deadletter: DeadLetter | None = None
    # event fields that were not matched because their value is no number/host
    unparsed: tuple[str, ...] = ()
    # event ts -> verdict, seconds (None when the record had no readable ts)
    latency_s: float | None = None
    # the rule of each alert folded by suppression (not in ``outputs``)
    suppressed: tuple[str, ...] = ()
    # the kind of each sighting in ``outputs``
    sightings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Protection:
    """The live worker's stateful side: the open exposures, where sightings go, and the
    suppression table (None: suppression off)."""

    exposures: ExposureTable
    sightings_topic: str
    suppression: SuppressionTable | None = None


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
        hunt: Hunt | None = None,
        protection: Protection | None = None,
    ) -> None:
        self._matcher = matcher
        # a retro-hunt's processor stamps every alert ``retro: true`` and its ``hunt``
        self._hunt = hunt
        self._alerts_topic = alerts_topic
        self._deadletter_topic = deadletter_topic
        self._max_bytes = max_record_bytes
        self._max_output = max_output_bytes
        self._clock = clock
        self._protection = protection

    def process(
        self, stream: Stream, raw: bytes | None, key: bytes | None, source: SourcePosition
    ) -> Outcome:
        now = self._clock()
        data = raw if raw is not None else b""
        try:
            event, ts_ms = decode_record(stream, data, max_bytes=self._max_bytes)
        except DecodeError as exc:
            return self._deadletter(stream, raw, key, source, exc.reason, exc.error, now, None)
        latency: float | None = None
        try:
            latency = max(0.0, (now - ts_ms) / 1000)
            matcher = self._matcher()
            if isinstance(event, CallEvent):
                verdict = matcher.match_call(event, now)
            else:
                verdict = matcher.match_web(event, now)
            protection = self._protection
            # a clean event needs nothing more unless it is the call of an exposed subscriber
            # (a journey's sighting): most are not, and are told so by one dict lookup
            if not verdict.matches and (
                protection is None
                or not isinstance(event, CallEvent)
                or event.subscriber_id is None
                or protection.exposures.find(event.partner_id, event.subscriber_id, ts_ms) is None
            ):
                return Outcome(stream, "clean", unparsed=verdict.unparsed, latency_s=latency)
            alerts = build_alerts(
                stream,
                event_copy(data) if verdict.matches else {},  # the input as received
                verdict,
                event_ts_ms=ts_ms,
                source=source,
                indicator_version=matcher.version,
                emitted_ms=now,
                hunt=self._hunt,
            )
            sightings: list[Sighting] = []
            folded: tuple[str, ...] = ()
            if protection is not None:
                alerts, sightings, folded = self._protect(
                    protection, event, ts_ms, alerts, verdict, matcher, source, now
                )
            alert_kafka_key = alert_key(event.partner_id, event.subscriber_id, event.event_id)
            outputs = tuple(
                Output(self._alerts_topic, alert_kafka_key, self._encode_alert(a, len(data)))
                for a in alerts
            )
            if sightings and protection is not None:
                topic = protection.sightings_topic
                outputs += tuple(Output(topic, s.key, s.to_json()) for s in sightings)
            rules = tuple((a.rule, a.severity) for a in alerts)
        except Exception as exc:
            # a bug or a surprise in matching must not stop the stream: keep the record
            log.exception("processing failed for %s %s", stream.value, source.as_dict())
            error = describe_exception(exc)
            return self._deadletter(stream, raw, key, source, PROCESSING_ERROR, error, now, latency)
        return Outcome(
            stream,
            "matched" if verdict.matches else "clean",
            outputs=outputs,
            alerts=rules,
            unparsed=verdict.unparsed,
            latency_s=latency,
            alert_records=tuple(alerts),
            suppressed=folded,
            sightings=tuple(s.kind for s in sightings),
        )

    def _protect(
        self,
        protection: Protection,
        event: CallEvent | WebEvent,
        ts_ms: int,
        alerts: list[Alert],
        verdict: Verdict,
        matcher: Matcher,
        source: SourcePosition,
        now: int,
    ) -> tuple[list[Alert], list[Sighting], tuple[str, ...]]:
        """Journey, sightings and suppression of one event's alerts: the alerts to emit, the
        sightings, and the rules of the alerts folded."""
        sightings: list[Sighting] = []
        if isinstance(event, CallEvent):
            exposure = (
                None
                if event.subscriber_id is None
                else protection.exposures.find(event.partner_id, event.subscriber_id, ts_ms)
            )
            if exposure is not None:
                journey = None
                if alerts:
                    journey = journey_alert(
                        event,
                        alerts[0].event,
                        verdict.matches,
                        exposure,
                        event_ts_ms=ts_ms,
                        source=source,
                        indicator_version=matcher.version,
                        emitted_ms=now,
                    )
                if journey is not None:
                    alerts.append(journey)
                else:
                    number = _unknown_other_party(event, verdict, matcher, now)
                    if number is not None:
                        sightings.append(call_sighting(event, number, exposure, event_ts_ms=ts_ms))
        else:
            page = page_alert(alerts)
            if page is not None and event.url:
                numbers = _unknown_url_numbers(event.url, verdict, matcher, now)
                sightings.extend(page_sightings(event, numbers, page, event_ts_ms=ts_ms))
        folded: tuple[str, ...] = ()
        table = protection.suppression
        if table is not None and alerts:
            emitted: list[Alert] = []
            for alert in alerts:
                kept = table.offer(alert)
                if kept is None:
                    folded = (*folded, alert.rule)
                else:
                    emitted.append(kept)
            alerts = emitted
        if isinstance(event, WebEvent) and event.subscriber_id is not None:
            for alert in alerts:  # a call right after the page, on this worker, sees it
                protection.exposures.add(alert, now, ts_ms)
        return alerts, sightings, folded

    def _encode_alert(self, alert: Alert, raw_size: int) -> bytes:
        # (an accepted record nests at most MAX_NESTING levels, so its copy always writes)
        value = alert.to_json()
        if self._max_output is None or len(value) <= self._max_output:
            return value
        # too big for a Kafka record: keep the detection, drop the bulky copies of the input
        slim = replace(
            alert,
            event={"truncated": True, "size": raw_size},
            matches=tuple(replace(m, observed=m.observed[:_MAX_OBSERVED]) for m in alert.matches),
        )
        value = slim.to_json()
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
        letter = build_deadletter(
            stream, raw, reason=reason, error=error, source=source, emitted_ms=now
        )
        value = letter.to_json()
        if self._max_output is not None and len(value) > self._max_output:
            # JSON escaping can grow text up to 6x (control characters): keep a prefix
            letter = build_deadletter(
                stream,
                raw,
                reason=reason,
                error=error,
                source=source,
                emitted_ms=now,
                max_raw_bytes=self._max_output // 8,
            )
            value = letter.to_json()
        output = Output(self._deadletter_topic, key, value)
        return Outcome(
            stream,
            "deadletter",
            outputs=(output,),
            reason=reason,
            latency_s=latency,
            deadletter=letter,
        )


def _unknown_other_party(
    event: CallEvent, verdict: Verdict, matcher: Matcher, now: int
) -> str | None:
    """The call's other party in E.164 when it is a number, no indicator and not allowlisted."""
    field = other_party_field(event)
    if any(m.field == field for m in verdict.matches):
        return None
    region = event.region.upper() if event.region else matcher.default_region
    try:
        number = normalize_phone(event.caller if field == "caller" else event.callee, region)
    except NormalizationError:
        return None
    return None if matcher.number_allowlisted(number, now) else number


def _unknown_url_numbers(url: str, verdict: Verdict, matcher: Matcher, now: int) -> list[str]:
    """The distinct numbers written in ``url`` that are no indicator and not allowlisted."""
    known = {
        m.normalized for m in verdict.matches if m.rule is Rule.URL_SCAM_NUMBER and m.field == "url"
    }
    unknown: list[str] = []
    for _, number in numbers_in_text(url, matcher.default_region):
        if (
            number not in known
            and number not in unknown
            and not matcher.number_allowlisted(number, now)
        ):
            unknown.append(number)
    return unknown
