"""The sample traffic generator: deterministic, and its truth agrees with the matcher."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from engine.core.events import decode_call, decode_web
from engine.core.matcher import Matcher
from engine.core.models import (
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Rule,
    StatefulRule,
    Stream,
)
from engine.core.normalize import normalize_phone
from engine.devtools.traffic import (
    BUNDLED_START_MS,
    DEFAULT_SEED,
    TRAFFIC_DIR,
    Traffic,
    TrafficIndicators,
    Truth,
    generate,
    journey_story,
    main,
    sample_snapshot,
    score,
    write_traffic,
)
from engine.errors import DecodeError

HARD_CASES = {
    "callee_scam",
    "caller_scam",
    "prefix_block",
    "withheld_to_scam",
    "withheld_clean",
    "genuine_support",
    "near_miss",
    "scam_host",
    "scam_subdomain",
    "scam_host_odd_form",
    "lookalike_boundary",
    "keyword_lookalike",
    "scam_url",
    "number_in_url",
    "scam_referrer",
}


@pytest.fixture(scope="module")
def snapshot() -> IndicatorSnapshot:
    return sample_snapshot()


@pytest.fixture(scope="module")
def facts(snapshot: IndicatorSnapshot) -> TrafficIndicators:
    return TrafficIndicators.from_snapshot(snapshot, BUNDLED_START_MS)


@pytest.fixture(scope="module")
def traffic(facts: TrafficIndicators) -> Traffic:
    return generate(facts)


def _run_matcher(
    traffic: Traffic, snapshot: IndicatorSnapshot
) -> tuple[dict[tuple[Stream, str], set[str]], list[tuple[Stream, int, str]]]:
    """Alerted rules by event, and (stream, line, reason) of every line that fails to decode."""
    matcher = Matcher.build(snapshot)
    observed: dict[tuple[Stream, str], set[str]] = {}
    rejected: list[tuple[Stream, int, str]] = []
    for stream in (Stream.CALLS, Stream.WEB):
        for line_no, line in enumerate(traffic.lines(stream)):
            try:
                if stream is Stream.CALLS:
                    call = decode_call(line)
                    verdict = matcher.match_call(call, BUNDLED_START_MS)
                    event_id = call.event_id
                else:
                    web = decode_web(line)
                    verdict = matcher.match_web(web, BUNDLED_START_MS)
                    event_id = web.event_id
            except DecodeError as exc:
                rejected.append((stream, line_no, exc.reason))
                continue
            if verdict.matches:
                observed[(stream, event_id)] = {str(m.rule) for m in verdict.matches}
    return observed, rejected


def test_same_seed_same_bytes_other_seed_other_traffic(facts: TrafficIndicators) -> None:
    first = generate(facts, calls=120, web=120)
    again = generate(facts, calls=120, web=120)
    other = generate(facts, calls=120, web=120, seed=DEFAULT_SEED + 1)
    assert first == again
    assert first.calls != other.calls
    assert first.web != other.web


def test_counts_and_every_hard_case(traffic: Traffic) -> None:
    assert len(traffic.calls) == 300
    assert len(traffic.web) == 300
    cases = {t.case for t in traffic.truth}
    assert cases >= HARD_CASES
    malformed = {t.case for t in traffic.truth if t.deadletter}
    assert len(malformed) == 7  # every malformed kind
    assert {t.deadletter for t in traffic.truth if t.deadletter} == {
        "invalid_json",
        "invalid_utf8",
        "schema_violation",
    }
    # every rule of the design is exercised
    assert set().union(*(t.rules for t in traffic.truth)) == set(Rule)


def test_bundled_files_are_what_the_generator_makes(traffic: Traffic, tmp_path: Path) -> None:
    """The files under engine/devtools/data/samples/traffic are the generator's output for
    the bundled feeds (regenerate with `python -m engine.devtools.traffic
    engine/devtools/data/samples/traffic` when the feeds change)."""
    written = write_traffic(traffic, tmp_path)
    for name, path in written.items():
        assert (TRAFFIC_DIR / f"{name}.jsonl").read_bytes() == path.read_bytes(), (
            f"{name}.jsonl is stale: regenerate with "
            "`python -m engine.devtools.traffic engine/devtools/data/samples/traffic`"
        )


def test_truth_agrees_with_the_matcher(traffic: Traffic, snapshot: IndicatorSnapshot) -> None:
    observed, rejected = _run_matcher(traffic, snapshot)
    result = score(traffic, observed)
    assert result.rule_mismatches == []
    assert (result.precision, result.recall) == (1.0, 1.0)
    assert result.true_positives == traffic.expected_alerting_events() > 50
    # each malformed line is rejected, with the reason the truth gives, and only those
    expected = sorted(
        (t.stream, t.line, t.deadletter) for t in traffic.truth if t.deadletter is not None
    )
    assert sorted(rejected) == expected


def test_the_allowlist_is_what_keeps_genuine_traffic_quiet(
    traffic: Traffic, snapshot: IndicatorSnapshot
) -> None:
    """Without the allowlist some genuine Microsoft/Amazon traffic would alert: the case is a
    real test of the allowlist, not just clean traffic."""
    observed, _ = _run_matcher(traffic, replace(snapshot, allowlist=()))
    genuine = {(t.stream, t.event_id) for t in traffic.truth if t.case == "genuine_support"}
    assert genuine & set(observed)
    assert all(not traffic.truth_by_event()[key].rules for key in genuine)


def test_score_counts_false_positives_and_misses() -> None:
    truth = (
        Truth(0, Stream.CALLS, "callee_scam", "a", frozenset({Rule.CALLEE_SCAM_NUMBER})),
        Truth(1, Stream.CALLS, "clean", "b"),
        Truth(2, Stream.CALLS, "caller_scam", "c", frozenset({Rule.CALLER_SCAM_NUMBER})),
        Truth(3, Stream.CALLS, "malformed:invalid_json", None, deadletter="invalid_json"),
    )
    traffic = Traffic((b"", b"", b"", b"x"), (), truth)
    observed = {
        (Stream.CALLS, "a"): {"callee_scam_number"},
        (Stream.CALLS, "b"): {"caller_scam_number"},
    }
    result = score(traffic, observed)
    assert (result.true_positives, result.false_positives, result.false_negatives) == (1, 1, 1)
    assert result.precision == 0.5
    assert result.recall == 0.5
    assert len(result.rule_mismatches) == 2
    assert traffic.expected_deadletters() == Counter({"invalid_json": 1})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_truth_holds_for_other_seeds(
    facts: TrafficIndicators, snapshot: IndicatorSnapshot, seed: int
) -> None:
    traffic = generate(facts, calls=400, web=400, seed=seed)
    observed, rejected = _run_matcher(traffic, snapshot)
    result = score(traffic, observed)
    assert result.rule_mismatches == []
    assert (result.precision, result.recall) == (1.0, 1.0)
    assert len(rejected) == sum(traffic.expected_deadletters().values())


def test_the_command_writes_only_where_it_is_told(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):  # no default: never into the installed package
        main([])
    main([str(tmp_path / "out"), "--calls", "40", "--web", "40"])
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["calls.jsonl", "truth.jsonl", "web.jsonl"]
    assert len((tmp_path / "out" / "calls.jsonl").read_bytes().splitlines()) == 40


def test_truth_is_the_reference_matchers_not_the_generators_intent(
    facts: TrafficIndicators, snapshot: IndicatorSnapshot
) -> None:
    """Matched against a snapshot that lacks the scam indicators, a case built to alert is
    refused: the truth comes from matching, never from what the case meant to show."""
    blind = replace(facts, snapshot=replace(snapshot, indicators=()))
    with pytest.raises(RuntimeError, match="reference matcher says"):
        generate(blind, calls=60, web=0)


def _story_ts(line: bytes) -> int:
    from engine.core.timestamps import parse_rfc3339

    ts = orjson.loads(line)["ts"]
    return parse_rfc3339(ts) if isinstance(ts, str) else int(ts)


@pytest.mark.parametrize("min_subscribers", [3, 5])
def test_the_journey_story_and_its_truth(
    facts: TrafficIndicators, snapshot: IndicatorSnapshot, min_subscribers: int
) -> None:
    story = journey_story(facts, min_subscribers=min_subscribers)
    assert story == journey_story(facts, min_subscribers=min_subscribers)  # deterministic
    assert journey_story(facts, min_subscribers=min_subscribers, seed=7) != story
    by_rule = Counter(str(r) for t in story.truth for r in t.rules)
    # every exposed subscriber's page alerts; one calls the listed number, min_subscribers
    # the unlisted one; later an exposed and an unexposed subscriber call it, discovered
    assert len(story.pages) == len(story.exposed) == min_subscribers + 1
    assert by_rule["host_scam_domain"] == len(story.pages)
    assert by_rule["victim_journey"] == 2
    assert by_rule["discovered_scam_number"] == 1
    assert by_rule["callee_scam_number"] == 3
    assert story.discovered_callee_alerts == 2
    (crossing,) = [t for t in story.truth if StatefulRule.DISCOVERED_SCAM_NUMBER in t.rules]
    unlisted_callers = [
        orjson.loads(line)["subscriber_id"]
        for line in story.calls
        if normalize_phone(orjson.loads(line)["callee"], "US") == story.unlisted_number
    ]
    assert len(set(unlisted_callers)) == min_subscribers
    assert set(unlisted_callers) <= set(story.exposed)
    assert crossing.event_id == orjson.loads(story.calls[-1])["event_id"]  # the last of them
    # pages, then calls minutes later, then the later calls; all within the journey window
    times = [_story_ts(line) for line in (*story.pages, *story.calls, *story.later_calls)]
    assert times == sorted(times)
    assert _story_ts(story.calls[0]) - _story_ts(story.pages[-1]) >= 60_000
    assert times[-1] - times[0] < 1_800_000
    # the per-event rules are the matcher's too: before the discovery, and after it with the
    # discovered number added
    before = Matcher.build(snapshot)
    discovered = Indicator(IndicatorType.PHONE, story.unlisted_number, sources=("x",))
    after = Matcher.build(replace(snapshot, indicators=(*snapshot.indicators, discovered)))
    per_event = {str(r) for r in Rule}
    for t, line, matcher in (
        *((t, line, before) for t, line in zip(story.truth, story.pages, strict=False)),
        *(
            (t, line, before)
            for t, line in zip(story.truth[len(story.pages) :], story.calls, strict=False)
        ),
        *(
            (t, line, after)
            for t, line in zip(
                story.truth[-len(story.later_calls) :], story.later_calls, strict=True
            )
        ),
    ):
        if t.stream is Stream.WEB:
            verdict = matcher.match_web(decode_web(line), BUNDLED_START_MS)
        else:
            verdict = matcher.match_call(decode_call(line), BUNDLED_START_MS)
        assert {str(m.rule) for m in verdict.matches} == {str(r) for r in t.rules} & per_event
