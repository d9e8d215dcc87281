"""Number discovery (engine.core.discovery): window, distinct subscribers, threshold, one
discovery per number per window, confidence, the indicator and the alert."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from hypothesis import given
from hypothesis import strategies as st

from engine.core.discovery import (
    EMPTY,
    DiscoveryPolicy,
    ExpiryIndex,
    NumberState,
    confidence,
    discovered_indicator,
    discovery_alert,
    observe,
)
from engine.core.models import IndicatorType, SourcePosition
from engine.core.records import Alert, Sighting
from engine.core.timestamps import format_rfc3339
from engine.devtools.schemas import validate

NUMBER = "+18885550123"
T0 = 1_790_000_000_000
HOUR = 3_600_000
POLICY = DiscoveryPolicy(window_ms=24 * HOUR, min_subscribers=3, ttl_ms=10 * 24 * HOUR)


def sighting(sub: str | None, ts_ms: int, partner: str = "p1", kind: str = "call") -> Sighting:
    return Sighting(
        number=NUMBER,
        kind="call" if kind == "call" else "page",
        partner_id=partner,
        subscriber_id=sub,
        event_id=f"e-{sub}-{ts_ms}",
        ts=format_rfc3339(ts_ms),
        exposure="alert-1",
    )


def stored(
    sightings: Sequence[tuple[str | None, int]],
    policy: DiscoveryPolicy = POLICY,
    *,
    always_write: bool = False,
) -> tuple[list[int | None], NumberState, int]:
    """What the agent does: the subscriber count of each discovery raised (None for none),
    the state the table ends with, and how many times it was written (``always_write``:
    every decision's state is kept, as if ``Decision.write`` were always true)."""
    state, writes, out = EMPTY, 0, []
    for sub, ts in sightings:
        decision = observe(state, sighting(sub, ts), ts, policy)
        if decision.write or always_write:
            state, writes = decision.state, writes + 1
        out.append(None if decision.discovery is None else decision.discovery.subscribers)
    return out, state, writes


def run(sightings: list[tuple[str | None, int]]) -> list[int | None]:
    """The subscriber count of each discovery raised (None for no discovery), in order."""
    return stored(sightings)[0]


def test_discovered_at_the_threshold_and_not_below() -> None:
    assert run([("a", T0), ("b", T0 + 1000)]) == [None, None]
    assert run([("a", T0), ("b", T0 + 1000), ("c", T0 + 2000)]) == [None, None, 3]


def test_the_same_subscriber_counts_once() -> None:
    assert run([("a", T0), ("a", T0 + 1), ("b", T0 + 2), ("b", T0 + 3)]) == [None] * 4


def test_same_subscriber_id_of_two_partners_are_two_subscribers() -> None:
    state = EMPTY
    for partner in ("p1", "p2"):
        state = observe(state, sighting("a", T0, partner), T0, POLICY).state
    decision = observe(state, sighting("b", T0 + 1), T0 + 1, POLICY)
    assert decision.discovery is not None and decision.discovery.subscribers == 3


def test_a_sighting_without_subscriber_is_not_counted() -> None:
    assert run([("a", T0), (None, T0 + 1), (None, T0 + 2), ("b", T0 + 3)]) == [None] * 4


def test_sightings_older_than_the_window_fall_out() -> None:
    window = POLICY.window_ms
    assert run([("a", T0), ("b", T0 + window), ("c", T0 + window + 1)]) == [None, None, None]
    # within the window (the oldest exactly window - 1 ms before the newest): counted
    assert run([("a", T0), ("b", T0 + 1), ("c", T0 + window - 1)]) == [None, None, 3]


def test_one_discovery_per_number_per_window() -> None:
    window = POLICY.window_ms
    got = run(
        [
            ("a", T0),
            ("b", T0 + 1),
            ("c", T0 + 2),  # discovered
            ("d", T0 + 3),  # same window: no second alert
            ("e", T0 + window),  # still within the window of the discovery at T0 + 2
            ("f", T0 + window + 2),  # that window is over; d, e, f are in this one
        ]
    )
    assert got == [None, None, 3, None, None, 3]


def test_the_discovery_carries_the_window_and_times() -> None:
    state = EMPTY
    for sub, ts in (("a", T0 + 5), ("b", T0), ("c", T0 + 9)):
        decision = observe(state, sighting(sub, ts), ts, POLICY)
        state = decision.state
    d = decision.discovery
    assert d is not None
    assert (d.number, d.subscribers, d.window_s) == (NUMBER, 3, 86_400)
    assert (d.first_seen, d.last_seen) == (format_rfc3339(T0), format_rfc3339(T0 + 9))


def test_state_round_trips_through_the_table_value() -> None:
    state = EMPTY
    for sub, ts in (("a", T0), ("b", T0 + 1), ("c", T0 + 2)):
        state = observe(state, sighting(sub, ts), ts, POLICY).state
    doc = orjson.loads(orjson.dumps(state.to_dict()))
    again = NumberState.from_dict(doc)
    assert again == state and again.alerted_ms == T0 + 2
    assert NumberState.from_dict(None) == EMPTY
    # restored from the table, the next subscriber is no second discovery in the window
    assert observe(again, sighting("d", T0 + 3), T0 + 3, POLICY).discovery is None


def test_confidence_grows_with_the_count() -> None:
    values = [confidence(n, 3) for n in range(3, 12)]
    assert values == sorted(values) and values[0] < values[1] and values[-1] <= 95
    assert confidence(3, 3) == 60 and confidence(4, 3) == 70


def test_the_indicator_and_the_alert() -> None:
    crossing = sighting("x", T0 + 1, kind="page")
    d = observe(NumberState({("p1", s): T0 for s in "abc"}), crossing, T0 + 1, POLICY).discovery
    assert d is not None and d.subscribers == 4
    now = T0 + 10
    ind = discovered_indicator(d, now, POLICY)
    assert (ind.type, ind.value, ind.sources, ind.tags) == (
        IndicatorType.PHONE,
        NUMBER,
        ("scamwatch-discovery",),
        ("discovered",),
    )
    assert ind.valid_until == now + POLICY.ttl_ms and ind.confidence == 70
    source = SourcePosition("sightings", 2, 41)
    key, alert = discovery_alert(
        d, crossing, source=source, indicator=ind, indicator_version=7, emitted_ms=now
    )
    again = discovery_alert(
        d, crossing, source=source, indicator=ind, indicator_version=7, emitted_ms=now + 5
    )[1]
    assert alert.alert_id == again.alert_id  # deterministic in the crossing sighting
    doc = orjson.loads(alert.to_json())
    assert doc["rule"] == "discovered_scam_number" and doc["severity"] == "high"
    assert doc["stream"] == "web" and doc["event"] == crossing.to_dict()
    assert doc["discovery"]["number"] == NUMBER and doc["discovery"]["subscribers"] == 4
    assert doc["matches"][0]["indicator"]["sources"] == ["scamwatch-discovery"]
    assert doc["source"] == {"topic": "sightings", "partition": 2, "offset": 41}
    assert key == b"p1:x"
    assert Alert.from_json(alert.to_json()) == alert
    validate("alert.v1", doc)


def test_last_active_is_the_newest_sighting_or_discovery() -> None:
    assert EMPTY.last_ms is None
    assert NumberState({("p1", "a"): T0, ("p1", "b"): T0 + HOUR}).last_ms == T0 + HOUR
    assert NumberState({}, alerted_ms=T0).last_ms == T0


def test_numbers_never_sighted_again_expire_on_a_later_sighting_of_their_partition() -> None:
    index = ExpiryIndex(POLICY.window_ms, sweep_every_ms=60_000)
    assert index.due(0, T0) == []  # the first sweep of a partition: nothing known yet
    index.note(0, "+1old", T0)
    index.note(0, "+1recent", T0 + 2 * HOUR)
    index.note(1, "+1other-partition", T0)
    # within the window of the partition's clock: nothing is due
    assert index.due(0, T0 + 24 * HOUR - 1) == []
    # a window after +1old's last sighting: it is due (once), the others are kept
    assert index.due(0, T0 + 25 * HOUR) == ["+1old"]
    assert index.due(0, T0 + 25 * HOUR + 60_000) == []  # +1recent is not a window behind
    assert len(index) == 2
    # another partition has its own clock: nothing of partition 1 went
    assert index.due(1, T0 + HOUR) == []
    assert index.due(1, T0 + 25 * HOUR) == ["+1other-partition"]


def test_a_sweep_runs_at_most_once_per_interval_of_the_partition_clock() -> None:
    index = ExpiryIndex(POLICY.window_ms, sweep_every_ms=60_000)
    assert index.due(0, T0) == []
    index.note(0, "+1old", T0 - 24 * HOUR)  # already a window behind
    assert index.due(0, T0 + 59_999) == []  # no sweep yet
    assert index.due(0, T0 + 60_000) == ["+1old"]


def test_the_clock_never_goes_back() -> None:
    index = ExpiryIndex(POLICY.window_ms, sweep_every_ms=60_000)
    index.due(0, T0 + 30 * HOUR)
    index.note(0, "+1old", T0)
    # a late sighting (older ts) still sweeps against the newest time seen
    assert index.due(0, T0) == []  # within the interval of the last sweep
    assert index.due(0, T0 + 30 * HOUR + 60_000) == ["+1old"]


def test_a_deleted_number_is_forgotten_and_a_fresh_state_is_not_expired() -> None:
    index = ExpiryIndex(POLICY.window_ms, sweep_every_ms=60_000)
    index.note(0, "+1gone", T0)
    index.note(0, "+1gone", None)
    assert len(index) == 0
    assert index.due(0, T0 + 48 * HOUR) == []
    fresh = NumberState({("p1", "a"): T0 + 48 * HOUR})
    stale = NumberState({("p1", "a"): T0})
    assert not index.is_expired(fresh, 0)
    assert index.is_expired(stale, 0)
    assert index.is_expired(EMPTY, 0)


def test_a_refresh_within_the_slack_is_not_written() -> None:
    slack = POLICY.refresh_slack_ms
    assert slack == 1_000  # a day's window: the 1 s ceiling, not a hundredth of it
    assert DiscoveryPolicy(window_ms=10_000, min_subscribers=3, ttl_ms=1).refresh_slack_ms == 100
    base = observe(EMPTY, sighting("a", T0), T0, POLICY)
    assert base.write
    state = base.state
    # the same subscriber again, less than the slack later: the table is left as it is
    assert not observe(state, sighting("a", T0 + slack - 1), T0 + slack - 1, POLICY).write
    assert not observe(state, sighting(None, T0 + 5), T0 + 5, POLICY).write  # nothing changes
    # the slack or more later, a new subscriber, or a discovery: written
    assert observe(state, sighting("a", T0 + slack), T0 + slack, POLICY).write
    assert observe(state, sighting("b", T0 + 1), T0 + 1, POLICY).write
    two = observe(state, sighting("b", T0 + 1), T0 + 1, POLICY).state
    third = observe(two, sighting("c", T0 + 2), T0 + 2, POLICY)
    assert third.discovery is not None and third.write


def test_a_page_reloading_in_a_loop_is_written_once_per_slack() -> None:
    # one subscriber's scam page reloads every 100 ms for a minute: 600 sightings
    loop = [("a", T0 + i * 100) for i in range(600)]
    _, state, writes = stored(loop)
    assert writes == 60  # once per second of it, not 600 times
    assert T0 + 59_900 - state.seen[("p1", "a")] < POLICY.refresh_slack_ms


SMALL = DiscoveryPolicy(window_ms=20_000, min_subscribers=3, ttl_ms=1)  # slack 200 ms


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", None]), st.integers(0, 2_000)),
        max_size=80,
    )
)
def test_skipped_writes_lag_by_less_than_the_slack(steps: list[tuple[str | None, int]]) -> None:
    """In time order: the table's times lag those of writing every time by less than the
    slack, and a subscriber only it has dropped was within the slack of the window's edge."""
    sightings, ts = [], T0
    for sub, gap in steps:
        ts += gap
        sightings.append((sub, ts))
    _, lagging, _ = stored(sightings, SMALL)
    _, exact, _ = stored(sightings, SMALL, always_write=True)
    assert lagging.seen.keys() <= exact.seen.keys()
    newest = max(exact.seen.values(), default=T0)
    for who, true_ts in exact.seen.items():
        if who in lagging.seen:
            assert 0 <= true_ts - lagging.seen[who] < SMALL.refresh_slack_ms
        else:
            assert true_ts < newest - SMALL.window_ms + SMALL.refresh_slack_ms


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e", None]), st.integers(0, 19_700)),
        max_size=60,
    )
)
def test_away_from_the_window_edges_the_discoveries_are_those_of_writing_every_time(
    steps: list[tuple[str | None, int]],
) -> None:
    """Any order, all within the window less the slack: the same discoveries."""
    sightings = [(sub, T0 + offset) for sub, offset in steps]
    assert stored(sightings, SMALL)[0] == stored(sightings, SMALL, always_write=True)[0]
