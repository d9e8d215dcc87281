"""The pure parts of the retro-hunt: durations, the hunt id, the indicators changed since a
version, and the processor stamping a hunt's alerts."""

from __future__ import annotations

import orjson
import pytest

from engine.core.matcher import Matcher
from engine.core.models import (
    Change,
    ChangeSet,
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Severity,
    SourcePosition,
    Stream,
)
from engine.core.processor import RecordProcessor
from engine.core.records import Alert, Hunt
from engine.devtools.schemas import validate
from engine.hunt import changed_indicators, feeds_digest, hunt_id, parse_duration
from engine.metrics import WorkerMetrics

NOW = 1_764_000_000_000
SCAM = Indicator(IndicatorType.PHONE, "+18005550199", sources=("feed",))
CALL = orjson.dumps(
    {"event_id": "e1", "ts": NOW - 5000, "partner_id": "p", "caller": "+12125550100",
     "callee": "+18005550199", "subscriber_id": "s1"}
)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90s", 90_000), ("15m", 900_000), ("2h", 7_200_000), ("7d", 604_800_000),
     ("1w", 604_800_000), ("1h30m", 5_400_000), ("250ms", 250), (" 2H ", 7_200_000)],
)  # fmt: skip
def test_durations_are_read_in_every_unit(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "2", "h", "2 h", "-1h", "0s", "1y", "2026-12-01T00:00:00Z"])
def test_what_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_hunt_id_is_the_same_for_the_same_parameters_and_differs_otherwise() -> None:
    base = hunt_id(1000, 2000, ["calls", "web"], "all")
    assert base == hunt_id(1000, 2000, ["web", "calls"], "all")
    others = {
        hunt_id(1001, 2000, ["calls", "web"], "all"),
        hunt_id(1000, 2001, ["calls", "web"], "all"),
        hunt_id(1000, 2000, ["calls"], "all"),
        hunt_id(1000, 2000, ["calls", "web"], "since:4"),
    }
    assert base not in others and len(others) == 4


def test_the_feeds_digest_follows_the_content() -> None:
    one = feeds_digest([("a.txt", b"+18005550199\n")])
    assert one == feeds_digest([("a.txt", b"+18005550199\n")])
    assert one != feeds_digest([("a.txt", b"+18005550198\n")])
    assert one.startswith("feeds:")


def _change(version: int, op: str, ind: Indicator, allowlist: bool = False) -> Change:
    return Change(version=version, op=op, allowlist=allowlist, indicator=ind)


def test_changed_indicators_are_the_upserts_still_there_as_last_written() -> None:
    removed = Indicator(IndicatorType.DOMAIN, "gone.example")
    raised = Indicator(IndicatorType.PHONE, "+18005550199", severity=Severity.CRITICAL)
    changes = ChangeSet(
        from_version=3,
        to_version=8,
        changes=(
            _change(4, "upsert", SCAM),
            _change(5, "upsert", removed),
            _change(6, "remove", removed),
            _change(7, "upsert", Indicator(IndicatorType.DOMAIN, "good.example"), allowlist=True),
            _change(8, "upsert", raised),
        ),
    )
    assert changed_indicators(changes) == (raised,)


def test_a_hunt_processor_stamps_retro_and_hunt_and_keeps_the_live_alert_id() -> None:
    matcher = Matcher.build(IndicatorSnapshot(version=3, indicators=(SCAM,)))
    hunt = Hunt(id="h-1", since="2026-11-30T00:00:00.000Z", until="2026-12-01T00:00:00.000Z")
    source = SourcePosition("calls", 0, 12)

    def run(stamp: Hunt | None) -> Alert:
        processor = RecordProcessor(
            matcher=lambda: matcher, alerts_topic="alerts", deadletter_topic="dl",
            clock=lambda: NOW, hunt=stamp,
        )  # fmt: skip
        outcome = processor.process(Stream.CALLS, CALL, None, source)
        assert outcome.kind == "matched"
        doc = orjson.loads(outcome.outputs[0].value)
        validate("alert.v1", doc)
        return Alert.from_dict(doc)

    live, retro = run(None), run(hunt)
    assert live.retro is None and live.hunt is None
    assert retro.retro is True and retro.hunt == hunt
    # the same detection: a consumer that drops duplicates by id sees one
    assert retro.alert_id == live.alert_id


def test_the_hunt_events_metric_is_exported_for_both_streams() -> None:
    metrics = WorkerMetrics()
    metrics.hunt_events.labels(stream="calls").inc(3)
    calls = metrics.registry.get_sample_value("scamwatch_hunt_events_total", {"stream": "calls"})
    web = metrics.registry.get_sample_value("scamwatch_hunt_events_total", {"stream": "web"})
    assert (calls, web) == (3.0, 0.0)
