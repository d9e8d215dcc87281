"""Victim journeys, sightings and suppression in the processor and their pure tables."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.journey import MAX_EXPOSURES_PER_SUBSCRIBER, Exposure, ExposureTable
from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, SourcePosition, Stream
from engine.core.processor import Outcome, Protection, RecordProcessor
from engine.core.records import Alert, RecordError, Sighting
from engine.core.suppression import SuppressionTable
from engine.core.timestamps import format_rfc3339
from engine.devtools.schemas import validate

NOW = 1_764_000_000_000
WINDOW_MS = 1_800_000
SCAM = Indicator(IndicatorType.PHONE, "+18005550199", sources=("feed",))
SCAM_PREFIX = Indicator(IndicatorType.PHONE_PREFIX, "+1900", sources=("feed",))
EVIL = Indicator(IndicatorType.DOMAIN, "evil.example", sources=("feed",))
SAFE = Indicator(IndicatorType.PHONE, "+18005550100", sources=("bank",))
SNAPSHOT = IndicatorSnapshot(version=3, indicators=(SCAM, SCAM_PREFIX, EVIL), allowlist=(SAFE,))
SOURCE = SourcePosition("t", 0, 5)
UNKNOWN = "+18885550123"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def worker(clock: Clock, suppress_ms: int = 0) -> tuple[RecordProcessor, ExposureTable]:
    matcher = Matcher.build(SNAPSHOT)
    table = ExposureTable(WINDOW_MS)
    suppression = SuppressionTable(suppress_ms, clock) if suppress_ms else None
    processor = RecordProcessor(
        matcher=lambda: matcher,
        alerts_topic="alerts",
        deadletter_topic="dead",
        clock=clock,
        protection=Protection(table, "sightings", suppression),
    )
    return processor, table


def web(ts: int, **fields: Any) -> bytes:
    record = {
        "event_id": "w1",
        "ts": ts,
        "partner_id": "p1",
        "url": "https://support.evil.example/call-1-888-555-0123-now",
        "subscriber_id": "s1",
    }
    record.update(fields)
    return orjson.dumps({k: v for k, v in record.items() if v is not None})


def call(ts: int, callee: str, **fields: Any) -> bytes:
    record = {
        "event_id": "c1",
        "ts": ts,
        "partner_id": "p1",
        "caller": "+12025550100",
        "callee": callee,
        "subscriber_id": "s1",
    }
    record.update(fields)
    return orjson.dumps({k: v for k, v in record.items() if v is not None})


def alerts_of(outcome: Outcome) -> list[dict[str, Any]]:
    out = []
    for o in outcome.outputs:
        if o.topic == "alerts":
            doc = orjson.loads(o.value)
            validate("alert.v1", doc)
            out.append(doc)
    return out


def sightings_of(outcome: Outcome) -> list[Sighting]:
    found = []
    for o in outcome.outputs:
        if o.topic == "sightings":
            validate("sighting.v1", orjson.loads(o.value))
            found.append(Sighting.from_json(o.value))
            assert o.key == found[-1].number.encode()
    return found


def test_a_call_after_the_page_adds_a_victim_journey_alert() -> None:
    processor, table = worker(Clock())
    page = processor.process(Stream.WEB, web(NOW - 60_000), None, SOURCE)
    (exposing,) = alerts_of(page)
    assert len(table) == 1
    outcome = processor.process(Stream.CALLS, call(NOW - 30_000, "1-800-555-0199"), None, SOURCE)
    rules = [a["rule"] for a in alerts_of(outcome)]
    assert rules == ["callee_scam_number", "victim_journey"]
    journey = alerts_of(outcome)[1]
    assert journey["severity"] == "critical"
    assert journey["journey"] == {
        "exposure_alert_id": exposing["alert_id"],
        "exposure_rule": "host_scam_domain",
        "exposure_indicator": exposing["matches"][0]["indicator"],
        "exposed_at": format_rfc3339(NOW - 60_000),
        "seconds_since": 30.0,
    }
    again = processor.process(Stream.CALLS, call(NOW - 30_000, "1-800-555-0199"), None, SOURCE)
    assert alerts_of(again)[1]["alert_id"] == journey["alert_id"]  # deterministic
    assert outcome.alerts[1] == ("victim_journey", "critical")


def test_no_journey_outside_the_window_or_before_the_page_or_for_another_subscriber() -> None:
    processor, _ = worker(Clock())
    processor.process(Stream.WEB, web(NOW - 100_000), None, SOURCE)
    late = call(NOW - 100_000 + WINDOW_MS + 1, "+18005550199")
    before = call(NOW - 100_001, "+18005550199")
    other = call(NOW - 50_000, "+18005550199", subscriber_id="s2")
    for raw in (late, before, other):
        outcome = processor.process(Stream.CALLS, raw, None, SOURCE)
        assert [a["rule"] for a in alerts_of(outcome)] == ["callee_scam_number"]


def test_a_page_older_than_the_window_exposes_nobody() -> None:
    processor, table = worker(Clock())
    processor.process(Stream.WEB, web(NOW - WINDOW_MS - 1), None, SOURCE)
    assert len(table) == 0


def test_other_party_follows_direction_and_prefixes_count() -> None:
    processor, _ = worker(Clock())
    processor.process(Stream.WEB, web(NOW - 60_000), None, SOURCE)
    inbound = call(NOW, "+12025550111", caller="+19005550000", direction="inbound")
    outcome = processor.process(Stream.CALLS, inbound, None, SOURCE)
    journey = alerts_of(outcome)[-1]
    assert journey["rule"] == "victim_journey"
    assert journey["matches"][0]["field"] == "caller"
    assert journey["matches"][0]["indicator"]["type"] == "phone_prefix"
    # outbound to a safe number while the scam number calls in: no journey (wrong party)
    outbound = call(NOW, "+12025550111", caller="+19005550000", direction="outbound")
    rules = [a["rule"] for a in alerts_of(processor.process(Stream.CALLS, outbound, None, SOURCE))]
    assert rules == ["caller_scam_number"]


def test_sightings_for_unknown_numbers_only() -> None:
    processor, _ = worker(Clock())
    page = processor.process(Stream.WEB, web(NOW - 60_000), None, SOURCE)
    (sighting,) = sightings_of(page)
    assert (sighting.number, sighting.kind, sighting.subscriber_id) == (UNKNOWN, "page", "s1")
    assert sighting.exposure == alerts_of(page)[0]["alert_id"]
    assert page.sightings == ("page",)
    called = processor.process(Stream.CALLS, call(NOW, "(888) 555-0123"), None, SOURCE)
    assert called.kind == "clean" and not alerts_of(called)
    (seen,) = sightings_of(called)
    assert (seen.number, seen.kind, seen.event_id) == (UNKNOWN, "call", "c1")
    assert seen.exposure == alerts_of(page)[0]["alert_id"]
    allowlisted = processor.process(Stream.CALLS, call(NOW, "+18005550100"), None, SOURCE)
    assert allowlisted.outputs == ()
    withheld = processor.process(Stream.CALLS, call(NOW, "anonymous"), None, SOURCE)
    assert withheld.outputs == ()
    unexposed = processor.process(
        Stream.CALLS, call(NOW, UNKNOWN, subscriber_id="s9"), None, SOURCE
    )
    assert unexposed.outputs == ()


def test_page_numbers_that_are_indicators_or_allowlisted_are_not_sighted() -> None:
    processor, _ = worker(Clock())
    url = "https://evil.example/c/1-800-555-0199/or/1-800-555-0100"
    outcome = processor.process(Stream.WEB, web(NOW, url=url), None, SOURCE)
    assert "url_scam_number" in {a["rule"] for a in alerts_of(outcome)}
    assert sightings_of(outcome) == []
    # a number on a page flagged by no domain/URL indicator is not sighted either
    plain = processor.process(
        Stream.WEB, web(NOW, url="https://ok.example/1-888-555-0123"), None, SOURCE
    )
    assert plain.outputs == ()


def test_suppression_counts_and_the_next_alert_carries_them() -> None:
    clock = Clock()
    processor, _ = worker(clock, suppress_ms=600_000)
    first = alerts_of(processor.process(Stream.CALLS, call(NOW, "+18005550199"), None, SOURCE))
    assert [a["rule"] for a in first] == ["callee_scam_number"] and "suppressed" not in first[0]
    folded = []
    for i in range(3):
        clock.now += 1000
        outcome = processor.process(Stream.CALLS, call(NOW + i, "+18005550199"), None, SOURCE)
        folded.append(outcome)
        assert outcome.kind == "matched" and outcome.outputs == ()
        assert outcome.suppressed == ("callee_scam_number",)
    # another subscriber and an event without one are never folded with it
    other = processor.process(
        Stream.CALLS, call(NOW, "+18005550199", subscriber_id="s2"), None, SOURCE
    )
    assert len(alerts_of(other)) == 1
    for _ in range(2):
        nobody = processor.process(
            Stream.CALLS, call(NOW, "+18005550199", subscriber_id=None), None, SOURCE
        )
        assert len(alerts_of(nobody)) == 1
    clock.now = NOW + 600_000
    (carried,) = alerts_of(
        processor.process(Stream.CALLS, call(NOW + 9, "+18005550199"), None, SOURCE)
    )
    assert carried["suppressed"] == {
        "count": 3,
        "first_ts": format_rfc3339(NOW),
        "last_ts": format_rfc3339(NOW + 2),
    }
    clock.now += 1
    assert processor.process(Stream.CALLS, call(NOW, "+18005550199"), None, SOURCE).outputs == ()


def test_victim_journey_is_never_suppressed() -> None:
    clock = Clock()
    processor, _ = worker(clock, suppress_ms=600_000)
    processor.process(Stream.WEB, web(NOW - 1000), None, SOURCE)
    rules = []
    for _ in range(3):
        outcome = processor.process(Stream.CALLS, call(NOW, "+18005550199"), None, SOURCE)
        rules.append([a["rule"] for a in alerts_of(outcome)])
    assert rules == [
        ["callee_scam_number", "victim_journey"],
        ["victim_journey"],
        ["victim_journey"],
    ]


def test_suppressed_web_alerts_still_sight_and_do_not_re_expose() -> None:
    clock = Clock()
    processor, table = worker(clock, suppress_ms=600_000)
    processor.process(Stream.WEB, web(NOW - 5000), None, SOURCE)
    again = processor.process(Stream.WEB, web(NOW - 1000, event_id="w2"), None, SOURCE)
    assert alerts_of(again) == [] and again.suppressed == ("host_scam_domain",)
    assert [s.number for s in sightings_of(again)] == [UNKNOWN]
    exposure = table.find("p1", "s1", NOW)
    assert exposure is not None and exposure.exposed_at_ms == NOW - 5000


def alert(alert_id: str, event_ts: int, **fields: Any) -> Alert:
    doc: dict[str, Any] = {
        "alert_id": alert_id,
        "ts": format_rfc3339(event_ts),
        "event_ts": format_rfc3339(event_ts),
        "stream": "web",
        "rule": "host_scam_domain",
        "severity": "high",
        "partner_id": "p1",
        "subscriber_id": "s1",
        "event_id": "w",
        "matches": [
            {
                "field": "host",
                "observed": "evil.example",
                "normalized": "evil.example",
                "indicator": {
                    "type": "domain",
                    "value": "evil.example",
                    "sources": ["feed"],
                    "severity": "high",
                    "confidence": 80,
                    "tags": [],
                    "valid_until": None,
                },
            }
        ],
        "event": {},
        "source": {"topic": "web", "partition": 0, "offset": 1},
        "engine": {"version": "x", "indicator_version": 1},
    }
    doc.update(fields)
    return Alert.from_dict(doc)


def test_exposure_table_is_order_independent_and_expires() -> None:
    a, b = alert("a", NOW - 10_000), alert("b", NOW - 5_000)
    tie = alert("c", NOW - 5_000)
    forward, backward = ExposureTable(WINDOW_MS), ExposureTable(WINDOW_MS)
    for x in (a, b, tie):
        forward.add(x, NOW)
    for x in (tie, b, a, a):
        backward.add(x, NOW)
    assert forward.find("p1", "s1", NOW) == backward.find("p1", "s1", NOW)
    found = forward.find("p1", "s1", NOW)
    assert found is not None and found.alert_id == "c"
    assert forward.add(alert("d", NOW, stream="calls"), NOW) is None
    assert forward.add(alert("e", NOW, subscriber_id=None), NOW) is None
    assert forward.add(alert("f", NOW, retro=True), NOW) is None
    assert forward.expire(NOW + WINDOW_MS - 5_000) == 1
    assert forward.expire(NOW + WINDOW_MS - 4_999) == 0
    assert not forward


def test_a_call_handled_after_a_later_page_finds_the_page_it_followed() -> None:
    # the calls behind the pages (consumer lag): the subscriber saw a page at -10 s, called
    # at -7 s, saw another page at -5 s; the call is handled after both pages
    table = ExposureTable(WINDOW_MS)
    first, second = alert("a", NOW - 10_000), alert("b", NOW - 5_000)
    table.add(first, NOW)
    table.add(second, NOW)
    found = table.find("p1", "s1", NOW - 7_000)
    assert found is not None and found.alert_id == "a"
    latest = table.find("p1", "s1", NOW)
    assert latest is not None and latest.alert_id == "b"
    assert table.find("p1", "s1", NOW - 11_000) is None  # before any page
    assert len(table) == 1  # one subscriber exposed
    # the first page's window is over: a call then is covered by the second page's
    after_first = NOW - 10_000 + WINDOW_MS + 1
    found = table.find("p1", "s1", after_first)
    assert found is not None and found.alert_id == "b"
    assert table.expire(after_first) == 1
    assert table.find("p1", "s1", NOW - 7_000) is None  # the first page is gone


def test_a_subscriber_keeps_its_first_and_latest_pages() -> None:
    table = ExposureTable(WINDOW_MS)
    pages = [alert(f"a{i:02d}", NOW - 60_000 + i * 1_000) for i in range(20)]
    for page in pages:
        table.add(page, NOW)
    kept = [pages[0], *pages[-(MAX_EXPOSURES_PER_SUBSCRIBER - 1) :]]
    for page in kept:
        found = table.find("p1", "s1", NOW - 60_000 + int(page.alert_id[1:]) * 1_000)
        assert found is not None and found.alert_id == page.alert_id
    # a call after a page no longer held is still a journey, of the first page
    found = table.find("p1", "s1", NOW - 60_000 + 3_000)
    assert found is not None and found.alert_id == "a00"
    assert table.find("p1", "s1", NOW - 61_000) is None  # before any page


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from("abcdef"), st.sampled_from(["s1", "s2"])),
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_the_exposures_held_do_not_depend_on_the_order_of_the_alerts(
    pages: list[tuple[int, str, str]], rng: Any
) -> None:
    alerts = [
        alert(f"{name}{at}", NOW - 40_000 + at * 1_000, subscriber_id=sub)
        for at, name, sub in pages
    ]
    shuffled = list(alerts)
    rng.shuffle(shuffled)
    one, two = ExposureTable(WINDOW_MS), ExposureTable(WINDOW_MS)
    for a in alerts:
        one.add(a, NOW)
    for a in shuffled:
        two.add(a, NOW)
    for sub in ("s1", "s2"):
        for at in range(-1, 42):
            t = NOW - 40_000 + at * 1_000
            assert one.find("p1", sub, t) == two.find("p1", sub, t)
    # and each answer is the latest page at or before the call among the latest kept
    for sub in ("s1", "s2"):
        mine = sorted({(at, name) for at, name, s in pages if s == sub})
        latest: dict[int, str] = {}
        for at, name in mine:  # one page per moment: the greatest alert id
            latest[at] = max(latest.get(at, ""), f"{name}{at}")
        ordered = sorted(latest)
        moments = ordered[:1] + ordered[1:][-(MAX_EXPOSURES_PER_SUBSCRIBER - 1) :]
        for at in range(-1, 42):
            # (kept: the first moment and the latest: a call after a page dropped finds
            # the latest kept before it)
            before = [m for m in moments if m <= at]
            found = one.find("p1", sub, NOW - 40_000 + at * 1_000)
            assert (found.alert_id if found else None) == (latest[before[-1]] if before else None)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"stream": "calls"},
        {"subscriber_id": None},
        {
            "retro": True,
            "hunt": {"id": "h", "since": "2026-11-28T00:00:00Z", "until": "2026-11-29T00:00:00Z"},
        },
        {"matches": []},
        {"event": {"deep": [[[{"a": "b" * 5000}]]], "n": 1e300}},  # the bulky copy, skipped
        {"journey": None, "suppressed": None},
    ],
)
def test_an_exposure_read_from_the_alerts_wire_form_is_the_one_of_the_alert(
    fields: dict[str, Any],
) -> None:
    a = alert("a", NOW - 10_000, **fields)
    assert Exposure.from_alert_json(a.to_json(), WINDOW_MS) == Exposure.of(a, WINDOW_MS)
    table = ExposureTable(WINDOW_MS)
    assert table.add_json(a.to_json(), NOW) == ExposureTable(WINDOW_MS).add(a, NOW)
    for b in (replace(a, event_ts=None), replace(a, event_ts="not a time")):
        assert Exposure.from_alert_json(b.to_json(), WINDOW_MS) is Exposure.of(b, WINDOW_MS)


def test_the_own_alert_read_back_from_the_topic_changes_nothing() -> None:
    # a worker adds its web alert when it makes it, and reads it again from ``alerts``
    table = ExposureTable(WINDOW_MS)
    a = alert("a", NOW - 10_000)
    held = table.add(a, NOW)
    assert held is not None
    assert table.add_json(a.to_json(), NOW) is held  # what was held, not made again
    assert table.find("p1", "s1", NOW) is held
    # expired meanwhile: as an expired alert read for the first time, it exposes nobody
    assert table.add_json(a.to_json(), held.expires_at_ms + 1) is None
    # another alert of the subscriber is still read and held when it is the later one
    later = alert("b", NOW - 5_000)
    assert table.add_json(later.to_json(), NOW) == Exposure.of(later, WINDOW_MS)
    assert table.find("p1", "s1", NOW) == Exposure.of(later, WINDOW_MS)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"stream":"web"}',
        b'{"stream":"web","partner_id":1,"alert_id":"a","rule":"r"}',
    ],
)
def test_a_record_that_is_no_alert_is_a_record_error(raw: bytes) -> None:
    with pytest.raises(RecordError):
        Exposure.from_alert_json(raw, WINDOW_MS)


def test_an_alert_whose_indicator_is_malformed_is_a_record_error() -> None:
    doc = orjson.loads(alert("a", NOW).to_json())
    doc["matches"][0]["indicator"]["confidence"] = "high"
    with pytest.raises(RecordError):
        Exposure.from_alert_json(orjson.dumps(doc), WINDOW_MS)


def test_suppression_table_forgets_quiet_keys() -> None:
    clock = Clock()
    table = SuppressionTable(1000, clock)
    assert table.offer(alert("a", NOW)) is not None
    clock.now += 1000
    assert table.offer(alert("a", NOW, subscriber_id="s2")) is not None  # sweeps
    assert len(table) == 1
    assert table.offer(alert("a", NOW)) is not None  # a new window: emitted, nothing carried


class WalkingExposureTable(ExposureTable):
    """The reference: expiry by a walk of every subscriber (how it was done before the
    due-time heap)."""

    def expire(self, now_ms: int) -> int:
        for key, held in list(self._open.items()):
            kept = [e for e in held if e.expires_at_ms >= now_ms]
            if kept:
                self._open[key] = kept
            else:
                del self._open[key]
        return len(self._open)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            # a page: subscriber, seconds before NOW it was seen, seconds the reader is late
            st.tuples(st.just("page"), st.integers(0, 3), st.integers(0, 40), st.integers(0, 9)),
            # an expiry pass, seconds after NOW - window (the clock may also go back)
            st.tuples(st.just("expire"), st.integers(0, 45)),
        ),
        max_size=60,
    )
)
def test_expiry_visits_only_what_is_due_and_keeps_what_a_walk_would(ops: list[Any]) -> None:
    window = 30_000  # 30 s: pages 0-40 s old expire within the examples' clocks
    table, walked = ExposureTable(window), WalkingExposureTable(window)
    base = NOW - 40_000
    for n, op in enumerate(ops):
        if op[0] == "page":
            _, who, ago, late = op
            page = alert(f"a{n:03d}", NOW - ago * 1_000, subscriber_id=f"s{who}")
            clock = NOW - ago * 1_000 + late * 1_000
            assert (table.add(page, clock) is None) == (walked.add(page, clock) is None)
        else:
            clock = base + op[1] * 1_000
            assert table.expire(clock) == walked.expire(clock)
        for who in range(4):
            for at in range(NOW - 45_000, NOW + 5_000, 2_500):
                assert table.find("p1", f"s{who}", at) == walked.find("p1", f"s{who}", at)
        assert len(table) == len(walked)


def test_the_exposure_a_worker_holds_is_the_one_every_other_worker_reads() -> None:
    # the processor makes it from the event's ts it decoded, the readers of alerts from the
    # alert's event_ts: the same exposure either way
    processor, table = worker(Clock())
    ts = NOW - 61_234
    outputs = processor.process(Stream.WEB, web(ts), None, SOURCE).outputs
    (page,) = [o for o in outputs if o.topic == "alerts"]
    held = table.find("p1", "s1", ts)
    assert held is not None and held.exposed_at_ms == ts
    assert Exposure.from_alert_json(page.value, WINDOW_MS) == held


def test_the_stateful_tables_hold_nothing_the_garbage_collector_walks() -> None:
    """Exposures and suppression entries are held by the hundred thousand; as objects the
    cyclic collector tracks, every full collection walked them all (240 ms for 52k exposures
    and the suppression keys beside them). Filled through the processor, the tables must
    leave only a handful of tracked objects behind, however many subscribers they hold."""
    import gc

    clock = Clock()
    processor, table = worker(clock, suppress_ms=600_000)
    subscribers = 2_000
    gc.collect()
    before = len(gc.get_objects())
    for i in range(subscribers):
        for raw, stream in (
            (web(NOW, event_id=f"w{i}", subscriber_id=f"s{i}"), Stream.WEB),
            (call(NOW + 1, SCAM.value, event_id=f"c{i}", subscriber_id=f"s{i}"), Stream.CALLS),
        ):
            assert processor.process(stream, raw, None, SOURCE).kind == "matched"
    gc.collect()
    held = len(gc.get_objects()) - before
    assert len(table) == subscribers
    assert held < 50, (
        f"{held} objects tracked by the garbage collector for {subscribers} subscribers"
    )
