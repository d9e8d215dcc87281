"""Number discovery (pure): the distinct exposed subscribers that saw a number within the
window, the threshold, one alert per number per window, and the confidence of what it learnt.

The ``discover`` agent keeps one :class:`NumberState` per number in a changelog-backed table
(its ``to_dict`` is the table's value) and calls :func:`observe` for each sighting. Time is
the sightings' own ``ts`` (event time), so a replay of the same sightings decides the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import __version__
from engine.core.alerts import alert_id, alert_key
from engine.core.models import (
    Indicator,
    IndicatorType,
    Severity,
    SourcePosition,
    StatefulRule,
    Stream,
)
from engine.core.records import (
    Alert,
    Discovery,
    EngineStamp,
    MatchDetail,
    MatchedIndicator,
    Sighting,
)
from engine.core.timestamps import format_rfc3339

DISCOVERY_SOURCE = "scamwatch-discovery"
DISCOVERY_TAG = "discovered"
# confidence of a discovered number: BASE at the threshold, STEP more per extra subscriber
CONFIDENCE_BASE = 60
CONFIDENCE_STEP = 10
CONFIDENCE_MAX = 95
# how often, in a partition's event time, its numbers never sighted again are looked for
SWEEP_EVERY_MS = 60_000
# a sighting that only moves known subscribers' times forward by less than this (and by less
# than a hundredth of the window) is not written back: see Decision.write
REFRESH_SLACK_MS = 1_000

Subscriber = tuple[str, str]  # (partner_id, subscriber_id)


@dataclass(frozen=True, slots=True)
class DiscoveryPolicy:
    """The discovery settings the logic needs."""

    window_ms: int
    min_subscribers: int
    ttl_ms: int

    @property
    def refresh_slack_ms(self) -> int:
        """How far a stored sighting time may lag the newest one (see :class:`Decision`)."""
        return min(REFRESH_SLACK_MS, self.window_ms // 100)


@dataclass(frozen=True, slots=True)
class NumberState:
    """What the table holds for one number: each subscriber's latest sighting in the window
    (epoch ms), and when the number was last discovered (``alerted_ms``, None if never)."""

    seen: Mapping[Subscriber, int]
    alerted_ms: int | None = None

    @property
    def last_ms(self) -> int | None:
        """When the number was last active (its newest sighting or discovery)."""
        times = [*self.seen.values(), *([] if self.alerted_ms is None else [self.alerted_ms])]
        return max(times, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": [[p, s, ts] for (p, s), ts in self.seen.items()],
            "alerted_ms": self.alerted_ms,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> NumberState:
        if not doc:
            return EMPTY
        seen = {(str(p), str(s)): int(ts) for p, s, ts in doc.get("seen", ())}
        alerted = doc.get("alerted_ms")
        return cls(seen, None if alerted is None else int(alerted))


EMPTY = NumberState({})


@dataclass(frozen=True, slots=True)
class Decision:
    """The state to store, the discovery to announce (None: nothing to emit), and whether
    the state needs writing back at all (``write``).

    A sighting that only moves subscribers already counted forward in time, each by less
    than the policy's ``refresh_slack_ms``, with no one joining or falling out and nothing
    discovered, leaves the table as it is (``write`` False): a scam page reloading in a loop
    sights its number for the same subscriber many times a second, and each write is a
    changelog record. The stored times then lag the newest ones by less than the slack, so
    near the window's edges a subscriber can fall out of it up to that much early (and a
    number be discovered again up to that much early); anywhere else the decisions are those
    of writing every time (tests/unit/core/test_discovery.py)."""

    state: NumberState
    discovery: Discovery | None = None
    write: bool = True


def _refresh_only(old: NumberState, new: NumberState, slack_ms: int) -> bool:
    """``new`` is ``old`` with some times moved forward by less than ``slack_ms``."""
    if new.alerted_ms != old.alerted_ms or new.seen.keys() != old.seen.keys():
        return False
    return all(0 <= ts - old.seen[who] < slack_ms for who, ts in new.seen.items())


def observe(
    state: NumberState, sighting: Sighting, ts_ms: int, policy: DiscoveryPolicy
) -> Decision:
    """Fold one sighting (its ``ts`` in ms) into ``state``. Sightings older than the window
    (before the newest sighting minus the window) fall out; a sighting without a subscriber
    is not counted (it cannot be told apart from another). At ``min_subscribers`` distinct
    subscribers a :class:`Discovery` is returned, once per window: not again until the
    window has passed since the last one."""
    seen = dict(state.seen)
    if sighting.subscriber_id is not None:
        who = (sighting.partner_id, sighting.subscriber_id)
        seen[who] = max(ts_ms, seen.get(who, ts_ms))
    newest = max(seen.values(), default=ts_ms)
    floor = newest - policy.window_ms
    seen = {who: ts for who, ts in seen.items() if ts > floor}
    alerted = state.alerted_ms
    if alerted is not None and alerted <= floor:
        alerted = None  # that discovery's window is over
    if alerted is None and len(seen) >= policy.min_subscribers:
        times = seen.values()
        discovery = Discovery(
            number=sighting.number,
            subscribers=len(seen),
            first_seen=format_rfc3339(min(times)),
            last_seen=format_rfc3339(max(times)),
            window_s=policy.window_ms // 1000,
        )
        return Decision(NumberState(seen, newest), discovery)
    new = NumberState(seen, alerted)
    return Decision(new, write=not _refresh_only(state, new, policy.refresh_slack_ms))


class ExpiryIndex:
    """When each number of the table was last active, by table partition, so the numbers
    never sighted again are dropped too: ``observe`` only ages a number out when that number
    is sighted again.

    Each partition has its own clock, the newest sighting time seen in it (event time, as the
    window is). At most once per ``sweep_every_ms`` of that clock, :meth:`due` hands out the
    numbers last active a window or more before it; the agent deletes them from the table in
    the context of a sighting of that partition, so the tombstone goes to the right changelog
    partition."""

    def __init__(self, window_ms: int, sweep_every_ms: int = SWEEP_EVERY_MS) -> None:
        self.window_ms = window_ms
        self.sweep_every_ms = sweep_every_ms
        self._last: dict[int, dict[str, int]] = {}
        self._clock: dict[int, int] = {}
        self._swept: dict[int, int] = {}

    def note(self, partition: int, number: str, last_ms: int | None) -> None:
        """``number`` (of table ``partition``) was last active at ``last_ms``; None: deleted."""
        numbers = self._last.setdefault(partition, {})
        if last_ms is None:
            numbers.pop(number, None)
        else:
            numbers[number] = last_ms

    def due(self, partition: int, ts_ms: int) -> list[str]:
        """Advance ``partition``'s clock to ``ts_ms`` (never back); when a sweep is due, the
        numbers a window or more behind the clock, forgotten here (the caller deletes them)."""
        clock = max(ts_ms, self._clock.get(partition, ts_ms))
        self._clock[partition] = clock
        swept = self._swept.get(partition)
        if swept is not None and clock - swept < self.sweep_every_ms:
            return []
        self._swept[partition] = clock
        numbers = self._last.get(partition, {})
        floor = clock - self.window_ms
        stale = [number for number, last in numbers.items() if last <= floor]
        for number in stale:
            del numbers[number]
        return stale

    def is_expired(self, state: NumberState, partition: int) -> bool:
        """``state`` (as the table holds it now) is a window or more behind the clock."""
        last = state.last_ms
        clock = self._clock.get(partition)
        return last is None or (clock is not None and last <= clock - self.window_ms)

    def __len__(self) -> int:
        return sum(len(numbers) for numbers in self._last.values())


def confidence(subscribers: int, min_subscribers: int) -> int:
    """Confidence of a discovered number: grows with the subscribers who called it."""
    extra = max(0, subscribers - min_subscribers)
    return min(CONFIDENCE_MAX, CONFIDENCE_BASE + CONFIDENCE_STEP * extra)


def discovered_indicator(discovery: Discovery, now_ms: int, policy: DiscoveryPolicy) -> Indicator:
    """The phone indicator a discovery adds to the store (``SCAMWATCH_DISCOVERY=indicator``)."""
    return Indicator(
        type=IndicatorType.PHONE,
        value=discovery.number,
        sources=(DISCOVERY_SOURCE,),
        severity=Severity.HIGH,
        confidence=confidence(discovery.subscribers, policy.min_subscribers),
        tags=(DISCOVERY_TAG,),
        valid_from=None,
        valid_until=now_ms + policy.ttl_ms,
        description=(
            f"called by {discovery.subscribers} exposed subscribers "
            f"between {discovery.first_seen} and {discovery.last_seen}"
        ),
    )


def discovery_alert(
    discovery: Discovery,
    sighting: Sighting,
    *,
    source: SourcePosition,
    indicator: Indicator,
    indicator_version: int,
    emitted_ms: int,
) -> tuple[bytes, Alert]:
    """The ``discovered_scam_number`` alert (severity high) raised by ``sighting``, the one
    that reached the threshold, and its Kafka key. Its id is deterministic in that sighting,
    so a sighting processed again yields a duplicate consumers drop."""
    # where the number was seen: a call's other party (a sighting does not say which side,
    # and it is the callee of the call-back scam) or a page's URL
    stream, field = (Stream.CALLS, "callee") if sighting.kind == "call" else (Stream.WEB, "url")
    rule = StatefulRule.DISCOVERED_SCAM_NUMBER
    number = discovery.number
    alert = Alert(
        alert_id=alert_id(
            stream, sighting.partner_id, sighting.event_id, rule, IndicatorType.PHONE, number
        ),
        ts=format_rfc3339(emitted_ms),
        event_ts=sighting.ts,
        stream=stream,
        rule=str(rule),
        severity=str(Severity.HIGH),
        partner_id=sighting.partner_id,
        subscriber_id=sighting.subscriber_id,
        event_id=sighting.event_id,
        matches=(MatchDetail(field, number, number, MatchedIndicator.of(indicator)),),
        event=sighting.to_dict(),
        source=source,
        engine=EngineStamp(__version__, indicator_version),
        discovery=discovery,
    )
    return alert_key(sighting.partner_id, sighting.subscriber_id, number), alert
