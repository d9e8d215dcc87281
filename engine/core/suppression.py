"""Alert suppression (pure, with an injected clock): the same alert again and again is one
alert and a count.

Key: ``(stream, partner_id, subscriber_id, rule, indicator type, indicator value)``. After an
alert is emitted for a key, the alerts of that key within ``window_ms`` (of the clock, from
that emitted alert) are not emitted but counted; the next alert emitted for the key carries
``suppressed`` ``{count, first_ts, last_ts}`` (the event times of the first and last one
folded). Alerts without ``subscriber_id``, ``victim_journey`` and ``discovered_scam_number``
are never suppressed. The table lives in the worker's memory: a restarted worker starts
empty, so each key emits at most one extra alert, and counts not yet carried are lost.

Its keys (tuples of strings) and entries (``msgspec.Struct`` with ``gc=False``: ints and
strings, in no reference cycle) are not tracked by the cyclic garbage collector: a key per
alert of the window, hundreds of thousands, would otherwise be walked by every full
collection (see :mod:`engine.core.journey`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import msgspec

from engine.core.models import StatefulRule
from engine.core.records import Alert, Suppressed

NEVER_SUPPRESSED = frozenset(
    (str(StatefulRule.VICTIM_JOURNEY), str(StatefulRule.DISCOVERED_SCAM_NUMBER))
)
# a key with a count not yet carried is kept this long after its last folded alert
RETAIN_FOLDED_MS = 86_400_000

# (stream, partner_id, subscriber_id, rule, indicator type, indicator value)
SuppressionKey = tuple[str, str, str, str, str, str]


class _Entry(msgspec.Struct, gc=False):
    emitted_ms: int
    last_seen_ms: int
    count: int = 0
    first_ts: str = ""
    last_ts: str = ""


class SuppressionTable:
    """Which alerts to emit; one per key and window, the rest counted."""

    def __init__(self, window_ms: int, clock: Callable[[], int]) -> None:
        if window_ms <= 0:
            raise ValueError("a suppression window is positive (0 = no table at all)")
        self.window_ms = window_ms
        self._clock = clock
        self._keys: dict[SuppressionKey, _Entry] = {}
        self._next_sweep = 0

    def __len__(self) -> int:
        return len(self._keys)

    @staticmethod
    def key(alert: Alert) -> SuppressionKey | None:
        """The alert's key, None when it is never suppressed."""
        if alert.subscriber_id is None or alert.rule in NEVER_SUPPRESSED or not alert.matches:
            return None
        indicator = alert.matches[0].indicator
        return (
            alert.stream.value,
            alert.partner_id,
            alert.subscriber_id,
            alert.rule,
            indicator.type,
            indicator.value,
        )

    def offer(self, alert: Alert) -> Alert | None:
        """The alert to emit (``suppressed`` filled when earlier ones were folded), or None
        when it is folded into its key's count."""
        key = self.key(alert)
        if key is None:
            return alert
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry.emitted_ms < self.window_ms:
            ts = alert.event_ts or alert.ts
            if entry.count == 0:
                entry.first_ts = ts
            entry.count += 1
            entry.last_ts = ts
            entry.last_seen_ms = now
            return None
        if now >= self._next_sweep:
            self._sweep(now)
        if entry is None:
            self._keys[key] = _Entry(now, now)
            return alert
        folded = entry.count
        first_ts, last_ts = entry.first_ts, entry.last_ts
        entry.emitted_ms = entry.last_seen_ms = now
        entry.count = 0
        if folded == 0:
            return alert
        return replace(alert, suppressed=Suppressed(folded, first_ts, last_ts))

    def _sweep(self, now: int) -> None:
        """Forget keys whose window is over and that have nothing to carry (and, after
        :data:`RETAIN_FOLDED_MS`, those that have): memory stays bounded by the traffic."""
        self._next_sweep = now + self.window_ms
        for key in [
            k
            for k, e in self._keys.items()
            if now - e.emitted_ms >= self.window_ms
            and (e.count == 0 or now - e.last_seen_ms >= RETAIN_FOLDED_MS)
        ]:
            del self._keys[key]
