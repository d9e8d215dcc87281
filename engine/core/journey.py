"""Victim journeys (pure): exposures, the ``victim_journey`` decision and sightings.

A web alert with a ``subscriber_id`` *exposes* ``(partner_id, subscriber_id)`` for the journey
window from the web event's ``ts`` (:class:`Exposure`). The worker keeps every open exposure of
the cluster in an :class:`ExposureTable` (fed by its own alerts at once and by the ``alerts``
topic; see :mod:`engine.stream.exposures`), and the processor asks it, per call of a
subscriber, whether the subscriber is exposed at the call's ``ts``
(:meth:`ExposureTable.find`: one dict lookup, no I/O). The table is order-independent: the
same alerts, in any order, leave the same exposures, so every worker decides alike.

**Out of the collector's way.** A worker holds an exposure per subscriber exposed in the
window, hundreds of thousands. As objects the cyclic garbage collector tracks (a dataclass, its
indicator, a list per subscriber), each full collection walked them all: 240 ms for 52k
exposures and the suppression table beside them, every few seconds as they grew
(``bench_pipeline.py``'s population rows, 2026-12-06). So an :class:`Exposure` is a
``msgspec.Struct`` with ``gc=False`` (it holds strings, ints and a tuple of them, and can be in
no reference cycle), its indicator a tuple of its fields, and a subscriber's exposures a tuple:
none of them is tracked (the tuples are untracked by the collector's first pass over them).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from engine import __version__
from engine.core.alerts import alert_id, match_detail
from engine.core.events import CallEvent, WebEvent
from engine.core.models import (
    IndicatorType,
    Match,
    Severity,
    SourcePosition,
    StatefulRule,
    Stream,
)
from engine.core.records import (
    Alert,
    EngineStamp,
    Journey,
    MatchedIndicator,
    RecordError,
    Sighting,
)
from engine.core.timestamps import format_rfc3339, parse_rfc3339

# web rules whose indicator is the page itself (a domain or URL): its numbers are sighted
_PAGE_INDICATOR_TYPES = frozenset((str(IndicatorType.DOMAIN), str(IndicatorType.URL)))


IndicatorRow = tuple[str, str, tuple[str, ...], str, int, tuple[str, ...], str | None]


def indicator_row(ind: MatchedIndicator) -> IndicatorRow:
    """``ind``'s fields, in order (a tuple the garbage collector does not track)."""
    return (
        ind.type,
        ind.value,
        ind.sources,
        ind.severity,
        ind.confidence,
        ind.tags,
        ind.valid_until,
    )


class Exposure(msgspec.Struct, frozen=True, gc=False):
    """A subscriber exposed by a web alert, from ``exposed_at_ms`` to ``expires_at_ms``.
    Never tracked by the cyclic garbage collector (see the module docstring)."""

    partner_id: str
    subscriber_id: str
    alert_id: str
    rule: str
    indicator_row: IndicatorRow  # the indicator that flagged the page (:attr:`indicator`)
    exposed_at_ms: int  # the web event's ts
    expires_at_ms: int

    @property
    def indicator(self) -> MatchedIndicator:
        return MatchedIndicator(*self.indicator_row)

    @classmethod
    def of(cls, alert: Alert, window_ms: int, event_ts_ms: int | None = None) -> Exposure | None:
        """The exposure an alert makes: a live web alert with a subscriber and an event
        time; None for any other (call alerts, retro-hunt alerts, no subscriber).
        ``event_ts_ms``: its ``event_ts`` in ms, when the caller has it (not parsed again)."""
        if alert.stream is not Stream.WEB or alert.retro or not alert.matches:
            return None
        return cls._made(alert, alert.matches[0].indicator, window_ms, event_ts_ms)

    @classmethod
    def from_alert_json(cls, raw: bytes, window_ms: int) -> Exposure | None:
        """:meth:`of` the alert.v1 record ``raw``, reading only the fields an exposure needs
        (a worker reads every web alert of the cluster: a whole ``Alert.from_json``, event
        copy and all, cost ~26 us a record against ~2 us here, measured on a typical web
        alert). RecordError when ``raw`` is not an alert."""
        return cls.of_head(alert_head(raw), window_ms)

    @classmethod
    def of_head(cls, head: _AlertHead, window_ms: int) -> Exposure | None:
        """:meth:`of` the fields :func:`alert_head` read."""
        if head.stream != Stream.WEB.value or head.retro or not head.matches:
            return None
        return cls._made(head, MatchedIndicator.from_dict(head.matches[0].indicator), window_ms)

    @classmethod
    def _made(
        cls,
        alert: Alert | _AlertHead,
        indicator: MatchedIndicator,
        window_ms: int,
        event_ts_ms: int | None = None,
    ) -> Exposure | None:
        if alert.subscriber_id is None or alert.event_ts is None:
            return None
        if event_ts_ms is not None:
            exposed_at = event_ts_ms
        else:
            try:
                exposed_at = parse_rfc3339(alert.event_ts)
            except ValueError:  # not a time: it exposes nobody (it used to stop the reader)
                return None
        return cls(
            alert.partner_id,
            alert.subscriber_id,
            alert.alert_id,
            alert.rule,
            indicator_row(indicator),
            exposed_at,
            exposed_at + window_ms,
        )

    def covers(self, at_ms: int) -> bool:
        return self.exposed_at_ms <= at_ms <= self.expires_at_ms


class _MatchHead(msgspec.Struct):
    indicator: dict[str, Any]


class _AlertHead(msgspec.Struct):
    """The fields of an alert.v1 record an exposure is made of (the rest is skipped)."""

    stream: str
    partner_id: str
    alert_id: str
    rule: str
    subscriber_id: str | None = None
    event_ts: str | None = None
    retro: bool = False
    matches: list[_MatchHead] = msgspec.field(default_factory=list)


_ALERT_HEAD = msgspec.json.Decoder(_AlertHead)


def alert_head(raw: bytes) -> _AlertHead:
    """The fields of the alert.v1 record ``raw`` an exposure is made of (RecordError when
    ``raw`` is not an alert)."""
    try:
        return _ALERT_HEAD.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RecordError(f"alert: {exc}") from None


# the exposures a subscriber keeps (pages seen within the window, one per moment): its
# first still open and its latest
MAX_EXPOSURES_PER_SUBSCRIBER = 8


class ExposureTable:
    """The open exposures, by subscriber: its first one still open and its latest (up to
    :data:`MAX_EXPOSURES_PER_SUBSCRIBER` in all, one per moment), dropped once expired.

    A call is matched to the latest page held that its subscriber saw at or before the
    call's ``ts``, so a call handled after later pages of its subscriber (the calls behind
    the pages in another worker or partition, as consumer lag makes them) still finds the
    page it followed, or, after more pages than are held, the first one, which covers it
    too while the pages come less than a window apart: holding only the latest exposure,
    such a call found none."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        # per subscriber, oldest first: exposed_at_ms strictly increasing (a tuple, replaced
        # on change: untracked by the garbage collector, as the exposures are)
        self._open: dict[tuple[str, str], tuple[Exposure, ...]] = {}
        # (when, subscriber), soonest first: each subscriber's first exposure held has an
        # entry at its expiry (pushed when it became the first), so expire() visits only the
        # subscribers with something due, not every one (a walk of all of them each second
        # cost the worker ~30 ms/s with 78k subscribers exposed, bench_pipeline 2026-12-04)
        self._due: list[tuple[int, tuple[str, str]]] = []

    def __len__(self) -> int:
        """The subscribers with an open exposure."""
        return len(self._open)

    def __bool__(self) -> bool:
        return bool(self._open)

    def add(self, alert: Alert, now_ms: int, event_ts_ms: int | None = None) -> Exposure | None:
        """Register the exposure ``alert`` makes (None when it makes none or has expired at
        ``now_ms``; ``event_ts_ms`` as :meth:`Exposure.of`). Adding the same alert again
        changes nothing."""
        return self.hold(Exposure.of(alert, self.window_ms, event_ts_ms), now_ms)

    def add_json(self, raw: bytes, now_ms: int) -> Exposure | None:
        """:meth:`add` for an alert.v1 record as read from ``alerts`` (RecordError when it
        is not one). The alert held already (this worker's own, added when it was made)
        changes nothing, and is not made into an exposure again."""
        head = alert_head(raw)
        if head.subscriber_id is not None:
            for held in self._open.get((head.partner_id, head.subscriber_id), ()):
                if held.alert_id == head.alert_id:
                    return None if held.expires_at_ms < now_ms else held
        return self.hold(Exposure.of_head(head, self.window_ms), now_ms)

    def hold(self, exposure: Exposure | None, now_ms: int) -> Exposure | None:
        """Keep ``exposure`` (None when it is None or expired at ``now_ms``). Of two of one
        moment the greater alert id is kept, and past the limit the second oldest goes (the
        first and the latest are kept): the same alerts in any order leave the same
        exposures."""
        if exposure is None or exposure.expires_at_ms < now_ms:
            return None
        key = (exposure.partner_id, exposure.subscriber_id)
        held = self._open.get(key)
        if held is None:
            self._open[key] = (exposure,)
            heapq.heappush(self._due, (exposure.expires_at_ms, key))
            return exposure
        at = exposure.exposed_at_ms
        i = len(held)
        while i and held[i - 1].exposed_at_ms > at:
            i -= 1
        if i and held[i - 1].exposed_at_ms == at:
            if exposure.alert_id > held[i - 1].alert_id:
                self._open[key] = (*held[: i - 1], exposure, *held[i:])
            return exposure
        now_held = (*held[:i], exposure, *held[i:])
        if i == 0:  # the oldest now: it expires first
            heapq.heappush(self._due, (exposure.expires_at_ms, key))
        if len(now_held) > MAX_EXPOSURES_PER_SUBSCRIBER:
            now_held = (now_held[0], *now_held[2:])  # the first and the latest are kept
        self._open[key] = now_held
        return exposure

    def find(self, partner_id: str, subscriber_id: str, at_ms: int) -> Exposure | None:
        """The exposure of the subscriber that covers ``at_ms`` (the call's ts): the latest
        at or before it, if that one is still open then."""
        held = self._open.get((partner_id, subscriber_id))
        if held is None:
            return None
        for exposure in reversed(held):
            if exposure.exposed_at_ms <= at_ms:
                return exposure if exposure.covers(at_ms) else None
        return None

    def expire(self, now_ms: int) -> int:
        """Drop the exposures expired at ``now_ms``; the subscribers still exposed."""
        due = self._due
        while due and due[0][0] < now_ms:
            _, key = heapq.heappop(due)
            held = self._open.get(key)
            if held is None or held[0].expires_at_ms >= now_ms:
                # the entry of a first exposure gone since (expired, or a subscriber dropped
                # and exposed anew): the first one held now has an entry of its own
                continue
            # oldest first, one window: the rest expire later
            kept = tuple(e for e in held if e.expires_at_ms >= now_ms)
            if kept:
                self._open[key] = kept
                heapq.heappush(due, (kept[0].expires_at_ms, key))
            else:
                del self._open[key]
        return len(self._open)


def other_party_field(event: CallEvent) -> str:
    """The field holding the call's other party: ``caller`` when inbound, else ``callee``."""
    return "caller" if event.direction == "inbound" else "callee"


def journey_alert(
    event: CallEvent,
    event_record: Mapping[str, Any],
    matches: Sequence[Match],
    exposure: Exposure,
    *,
    event_ts_ms: int,
    source: SourcePosition,
    indicator_version: int,
    emitted_ms: int,
) -> Alert | None:
    """The ``victim_journey`` alert of an exposed subscriber's call, or None when its other
    party matched no number indicator. ``matches`` are the call's matches (all fields); the
    alert holds those of the other party. Its id is deterministic like every alert's: the
    event, the rule and the first indicator of the other party."""
    field = other_party_field(event)
    party = [m for m in matches if m.field == field]
    if not party:
        return None
    first = party[0].indicator
    return Alert(
        alert_id=alert_id(
            Stream.CALLS,
            event.partner_id,
            event.event_id,
            StatefulRule.VICTIM_JOURNEY,
            first.type,
            first.value,
        ),
        ts=format_rfc3339(emitted_ms),
        event_ts=format_rfc3339(event_ts_ms),
        stream=Stream.CALLS,
        rule=str(StatefulRule.VICTIM_JOURNEY),
        severity=str(Severity.CRITICAL),
        partner_id=event.partner_id,
        subscriber_id=event.subscriber_id,
        event_id=event.event_id,
        matches=tuple(match_detail(m) for m in party),
        event=event_record,
        source=source,
        engine=EngineStamp(__version__, indicator_version),
        journey=Journey(
            exposure_alert_id=exposure.alert_id,
            exposure_rule=exposure.rule,
            exposure_indicator=exposure.indicator,
            exposed_at=format_rfc3339(exposure.exposed_at_ms),
            seconds_since=(event_ts_ms - exposure.exposed_at_ms) / 1000,
        ),
    )


def call_sighting(
    event: CallEvent, number: str, exposure: Exposure, *, event_ts_ms: int
) -> Sighting:
    """The sighting of an exposed subscriber's call to an unknown ``number`` (E.164; the
    caller checks it is no indicator and not allowlisted)."""
    return Sighting(
        number=number,
        kind="call",
        partner_id=event.partner_id,
        subscriber_id=event.subscriber_id,
        event_id=event.event_id,
        ts=format_rfc3339(event_ts_ms),
        exposure=exposure.alert_id,
    )


def page_alert(alerts: Sequence[Alert]) -> Alert | None:
    """The first of a web event's alerts that flagged the page itself (a domain or URL
    indicator): the numbers written in that page's URL are sighted under it."""
    for alert in alerts:
        if alert.matches and alert.matches[0].indicator.type in _PAGE_INDICATOR_TYPES:
            return alert
    return None


def page_sightings(
    event: WebEvent,
    numbers: Sequence[str],
    page: Alert,
    *,
    event_ts_ms: int,
) -> list[Sighting]:
    """The sightings of the unknown ``numbers`` (E.164, distinct, no indicator, not
    allowlisted: the caller checks) written in the URL of a page that ``page`` flagged."""
    ts = format_rfc3339(event_ts_ms)
    return [
        Sighting(
            number=number,
            kind="page",
            partner_id=event.partner_id,
            subscriber_id=event.subscriber_id,
            event_id=event.event_id,
            ts=ts,
            exposure=page.alert_id,
        )
        for number in numbers
    ]
