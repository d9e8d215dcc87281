"""Live updates: a matcher changed in place by change sets answers exactly as a matcher built
fresh from the snapshot those changes lead to (random indicator sets, random change
sequences with removes, allowlist changes, expiry windows, keywords coming and going), with
its per-host caches warmed by events before every change so a stale cache entry shows."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.events import CallEvent, WebEvent
from engine.core.matcher import Matcher
from engine.core.models import Change, ChangeSet, Indicator, IndicatorSnapshot, IndicatorType
from tests.unit.core.test_matcher_properties import (
    NOW,
    PROPERTY_SETTINGS,
    answer,
    call_events,
    entries,
    validity,
    web_events,
)

T = IndicatorType
Key = tuple[IndicatorType, str]


@st.composite
def change_batches(
    draw: st.DrawFn, pool: tuple[Indicator, ...], allow_pool: tuple[Indicator, ...]
) -> list[list[tuple[str, bool, Indicator]]]:
    """Batches of (op, allowlist?, indicator): indicators of the pool, with a fresh validity
    window on each upsert (an upsert of a held entry changes its expiry)."""
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        batch = []
        for _ in range(draw(st.integers(1, 8))):
            allowlist = bool(allow_pool) and draw(st.integers(0, 3)) == 0
            ind = draw(st.sampled_from(allow_pool if allowlist else pool))
            op = draw(st.sampled_from(["upsert", "upsert", "remove"]))
            valid_from, valid_until = draw(validity())
            ind = replace(ind, valid_from=valid_from, valid_until=valid_until)
            batch.append((op, allowlist, ind))
        batches.append(batch)
    return batches


def aimed_events(inds: tuple[Indicator, ...]) -> tuple[list[CallEvent], list[WebEvent]]:
    """Events that hit (or nearly hit) each indicator: its host and hosts under it, its URL
    and longer ones, its number and numbers under a prefix, a keyword in a host and a URL."""
    calls: list[CallEvent] = []
    webs: list[WebEvent] = []
    for ind in inds:
        v = ind.value
        if ind.type in (T.PHONE, T.PHONE_PREFIX):
            for number in (v, v + "0", v + "00199", v.ljust(12, "5")):
                calls.append(
                    CallEvent(event_id="e", ts=NOW, partner_id="p", caller=number, callee=number)
                )
                webs.append(
                    WebEvent(
                        event_id="e", ts=NOW, partner_id="p", url=f"https://x.test/call-{number}"
                    )
                )
        elif ind.type is T.DOMAIN:
            for host in (v, "www." + v, "a.b." + v):
                webs.append(
                    WebEvent(
                        event_id="e", ts=NOW, partner_id="p", host=host, url=f"https://{host}/a"
                    )
                )
                webs.append(
                    WebEvent(
                        event_id="e", ts=NOW, partner_id="p", url="https://x.test/", referrer=host
                    )
                )
        elif ind.type is T.URL:
            for url in (v, v + "/x", v + "a"):
                webs.append(
                    WebEvent(
                        event_id="e", ts=NOW, partner_id="p", url="https://" + url, referrer=url
                    )
                )
        else:
            webs.append(
                WebEvent(
                    event_id="e",
                    ts=NOW,
                    partner_id="p",
                    host=f"{v}.help",
                    url=f"https://s.test/{v}",
                )
            )
    return calls, webs


def same_answers(
    live: Matcher,
    fresh: Matcher,
    calls: list[CallEvent],
    webs: list[WebEvent],
    at: int,
) -> None:
    for call in calls:
        assert answer(live.match_call(call, at)) == answer(fresh.match_call(call, at)), call
    for web in webs:
        assert answer(live.match_web(web, at)) == answer(fresh.match_web(web, at)), web


def snapshot_of(version: int, held: dict[bool, dict[Key, Indicator]]) -> IndicatorSnapshot:
    return IndicatorSnapshot(version, tuple(held[False].values()), tuple(held[True].values()))


@settings(PROPERTY_SETTINGS, max_examples=100)  # each example builds up to seven matchers
@given(
    data=st.data(),
    pool=entries(8, 40),
    allow_pool=entries(0, 8),
    random_calls=st.lists(call_events, max_size=4),
    random_webs=st.lists(web_events, max_size=6),
    later=st.integers(0, 2 * 10**6),
)
def test_in_place_updates_answer_as_a_fresh_build(
    data: st.DataObject,
    pool: tuple[Indicator, ...],
    allow_pool: tuple[Indicator, ...],
    random_calls: list[CallEvent],
    random_webs: list[WebEvent],
    later: int,
) -> None:
    start = data.draw(st.lists(st.sampled_from(pool), unique=True), "start")
    start_allow = (
        data.draw(st.lists(st.sampled_from(allow_pool), unique=True), "start_allow")
        if allow_pool
        else []
    )
    held: dict[bool, dict[Key, Indicator]] = {
        False: {i.key: i for i in start},
        True: {i.key: i for i in start_allow},
    }
    live = Matcher.build(snapshot_of(1, held))
    aimed_calls, aimed_webs = aimed_events(pool + allow_pool)
    calls, webs = random_calls + aimed_calls, random_webs + aimed_webs
    gauge = live.counts(NOW)
    version = 1
    for batch in data.draw(change_batches(pool, allow_pool), "batches"):
        same_answers(live, live, calls, webs, NOW)  # warm the per-host caches
        changes = []
        for op, allowlist, ind in batch:
            version += 1
            changes.append(Change(version, op, allowlist, ind))
            if op == "remove":
                held[allowlist].pop(ind.key, None)
            else:
                held[allowlist][ind.key] = ind
        deltas = live.update(ChangeSet(version - len(batch), version, tuple(changes)), NOW)
        fresh = Matcher.build(snapshot_of(version, held))
        assert live.version == version
        for at in (NOW, NOW + later):
            same_answers(live, fresh, calls, webs, at)
        gauge = {t: gauge[t] + deltas[t] for t in IndicatorType}
        assert gauge == fresh.counts(NOW) == live.counts(NOW)


def test_a_cached_host_sees_a_domain_removed_and_a_keyword_added() -> None:
    evil = Indicator(T.DOMAIN, "evil.com")
    live = Matcher.build(IndicatorSnapshot(1, (evil,)))
    web = WebEvent(
        event_id="e", ts=NOW, partner_id="p", host="www.evil.com", url="https://www.evil.com/paypal"
    )
    assert {m.rule.value for m in live.match_web(web, NOW).matches} == {"host_scam_domain"}
    live.update(
        ChangeSet(
            1,
            3,
            (
                Change(2, "remove", False, evil),
                Change(3, "upsert", False, Indicator(T.KEYWORD, "paypal")),
            ),
        )
    )
    assert {m.rule.value for m in live.match_web(web, NOW).matches} == {"keyword_impersonation"}
    live.update(ChangeSet(3, 4, (Change(4, "upsert", True, Indicator(T.KEYWORD, "paypal")),)))
    assert live.match_web(web, NOW).matches == ()


def test_prepare_changes_nothing_and_changes_must_follow_the_matchers_version() -> None:
    number = Indicator(T.PHONE_PREFIX, "+1800")
    live = Matcher.build(IndicatorSnapshot(5, ()))
    call = CallEvent(event_id="e", ts=NOW, partner_id="p", caller="x", callee="+18005550199")
    prepared = live.prepare(ChangeSet(5, 6, (Change(6, "upsert", False, number),)))
    assert live.match_call(call, NOW).matches == () and live.version == 5
    assert live.apply(prepared, NOW)[T.PHONE_PREFIX] == 1
    assert [m.indicator for m in live.match_call(call, NOW).matches] == [number]
    with pytest.raises(ValueError, match="do not follow"):
        live.update(ChangeSet(5, 7, (Change(7, "remove", False, number),)))
    assert live.version == 6 and live.match_call(call, NOW).matches != ()


def test_a_new_keyword_automaton_is_built_only_when_keywords_come_or_go() -> None:
    kw = Indicator(T.KEYWORD, "paypal")
    live = Matcher.build(IndicatorSnapshot(1, (kw,)))
    later = replace(kw, valid_until=NOW + 1)
    assert live.prepare(ChangeSet(1, 2, (Change(2, "upsert", False, later),))).keywords is None
    assert live.prepare(ChangeSet(1, 2, (Change(2, "upsert", True, later),))).keywords is None
    new = live.prepare(ChangeSet(1, 2, (Change(2, "remove", False, kw),))).keywords
    assert new is not None and new[0] == {}
