"""Property tests: the indexed Matcher finds exactly what the loop-over-everything reference
finds, on random indicator sets and adversarial events (label boundaries, trailing dots, case,
IDN vs punycode, ports and userinfo, numbers in many written forms, allowlisted and expired
entries)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.events import CallEvent, WebEvent
from engine.core.matcher import Matcher, numbers_in_text
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, Verdict
from engine.core.normalize import normalize
from engine.devtools.reference import ReferenceMatcher, numbers_by_hand
from engine.errors import NormalizationError

T = IndicatorType
NOW = 1_764_000_000_000
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# small pools so that indicators and events collide often, boundaries included
BASES = [
    "evil.com",
    "higan.org",
    "michigan.org",
    "bücher.de",
    "xn--bcher-kva.de",
    "microsoft.com",
    "evil.com.example.org",
    "notevil.com",
    "com",
    "amazon-support.net",
    "rnicrosoft.help",
    "mіcrosoft.help",
    "micr0soft.help",
    "192.0.2.1",
]
LABELS = ["a", "www", "evil", "login", "support", "BÜCHER", "xn--bcher-kva", "microsoft"]
NUMBERS = ["+18005550199", "+18005550100", "+18885550123", "+442079460000", "+14155550123"]
PATHS = [
    "",
    "/",
    "/a",
    "/ab",
    "/abc",
    "/pay",
    "/Pay",
    "/call-1-800-555-0199",
    "/?tel=18005550199",
    "/x?tel=%2B442079460000",
    "/18885550123/y",
    "/c/(800)%20555-0199",
    "/microsoft-support",
    "/a?b=1",
    "/order/180055501991234",
    # more digits glued on after a separator: the number is a part of its run
    "/call-1-800-555-0199-24-7",
    "/microsoft-help-18005550199-2024.html",
    "/call-1-800-555-0199-1",
    "/?n=2024-11-28-1-800-555-0199",
    "/order-2024112812345678",
    "/x/+44-20-7946-0000-9",
]
KEYWORDS = ["microsoft", "micro", "support", "amazon", "evil", "rnicro", "bücher", "higan.org"]
REGIONS = [None, "US", "GB"]


def url_space(form: str) -> str:
    """How a URL writes the spaces of a number (varied by the form, deterministically)."""
    return ["-", "%20", ".", "-"][len(form) % 4]


def written_forms(e164: str) -> list[str]:
    """Ways a number is written in a CDR or a URL."""
    digits = e164[1:]
    forms = [e164, digits, "00" + digits, f"+{digits[:1]} {digits[1:4]} {digits[4:7]} {digits[7:]}"]
    if e164.startswith("+1"):
        national = digits[1:]
        forms += [
            f"({national[:3]}) {national[3:6]}-{national[6:]}",
            f"1-{national[:3]}-{national[3:6]}-{national[6:]}",
            national,
            "011 " + digits,
        ]
    if e164.startswith("+44"):
        forms += ["0" + digits[2:], f"0{digits[2:4]} {digits[4:8]} {digits[8:]}"]
    return forms


domains = st.tuples(st.lists(st.sampled_from(LABELS), max_size=2), st.sampled_from(BASES)).map(
    lambda t: ".".join([*t[0], t[1]])
)
hosts_as_written = st.tuples(
    domains,
    st.sampled_from(["", ".", ":8080", ":443", ".:80"]),
    st.booleans(),
).map(lambda t: (t[0].upper() if t[2] else t[0]) + t[1])
numbers_written = st.sampled_from(NUMBERS).flatmap(lambda n: st.sampled_from(written_forms(n)))
phones_in_events = st.one_of(
    numbers_written,
    st.sampled_from(["anonymous", "", "private", "garbage", "+", "12"]),
    st.from_regex(r"\+?[0-9]{6,13}", fullmatch=True),
)
# a number written in a URL path with other digits glued on before or after it by a
# separator (dates, "24-7", versions, order numbers), or by nothing at all
numbered_paths = st.tuples(
    st.sampled_from(
        ["/call-", "/microsoft-help-", "/x/", "/?tel=", "/2024-11-28-", "/v1.2.", "/12"]
    ),
    numbers_written.map(lambda form: form.replace(" ", url_space(form))),
    st.sampled_from(["", "-1", "-24-7", "-2024.html", ".1", "-0199", "2024", "-12345678901234"]),
).map(lambda t: "".join(t))
urls_as_written = st.tuples(
    st.sampled_from(["", "http://", "https://", "HTTPS://", "//", "hxxp://"]),
    st.sampled_from(["", "user@", "u:p@"]),
    hosts_as_written,
    st.sampled_from(PATHS) | numbered_paths,
    st.sampled_from(["", "#frag", "&n=1.800.555.0199"]),
).map(lambda t: "".join(t))


@st.composite
def validity(draw: st.DrawFn) -> tuple[int | None, int | None]:
    kind = draw(st.sampled_from(["always", "always", "expired", "future", "window"]))
    if kind == "expired":
        return None, NOW - draw(st.integers(1, 10**6))
    if kind == "future":
        return NOW + draw(st.integers(1, 10**6)), None
    if kind == "window":
        return NOW - 1000, NOW + 1000
    return None, None


@st.composite
def entries(draw: st.DrawFn, min_size: int, max_size: int) -> tuple[Indicator, ...]:
    raw_values = st.one_of(
        st.tuples(st.just(T.PHONE), numbers_written),
        st.tuples(
            st.just(T.PHONE_PREFIX),
            st.sampled_from(NUMBERS).flatmap(lambda n: st.integers(2, len(n)).map(lambda k: n[:k])),
        ),
        st.tuples(st.just(T.DOMAIN), st.one_of(st.sampled_from(BASES), hosts_as_written)),
        st.tuples(st.just(T.URL), urls_as_written),
        st.tuples(st.just(T.KEYWORD), st.sampled_from(KEYWORDS)),
    )
    chosen: dict[tuple[IndicatorType, str], Indicator] = {}
    for type_, raw in draw(st.lists(raw_values, min_size=min_size, max_size=max_size)):
        try:
            value = normalize(type_, raw, "US")
        except NormalizationError:
            continue
        valid_from, valid_until = draw(validity())
        chosen[(type_, value)] = Indicator(
            type_, value, sources=("prop",), valid_from=valid_from, valid_until=valid_until
        )
    return tuple(chosen.values())


snapshots = st.builds(
    lambda inds, allow: IndicatorSnapshot(1, inds, allow), entries(10, 60), entries(0, 6)
)
call_events = st.builds(
    lambda caller, callee, region: CallEvent(
        event_id="e", ts=NOW, partner_id="p", caller=caller, callee=callee, region=region
    ),
    phones_in_events,
    phones_in_events,
    st.sampled_from(REGIONS),
)
web_events = st.builds(
    lambda host, url, referrer: WebEvent(
        event_id="e", ts=NOW, partner_id="p", host=host, url=url, referrer=referrer
    ),
    st.sampled_from([None, "bad host!", ""]) | hosts_as_written | hosts_as_written,
    st.sampled_from([None, "mailto:x@y"]) | urls_as_written | urls_as_written,
    st.none() | urls_as_written,
)


def answer(verdict: Verdict) -> tuple[set[tuple[str, str, str, str]], set[str]]:
    matches = {
        (m.rule.value, m.field, m.indicator.type.value, m.indicator.value) for m in verdict.matches
    }
    assert len(matches) == len(verdict.matches)  # one match per (rule, field, indicator)
    return matches, set(verdict.unparsed)


@PROPERTY_SETTINGS
@given(snapshot=snapshots, events=st.lists(call_events, min_size=1, max_size=5))
def test_calls_match_like_the_reference(
    snapshot: IndicatorSnapshot, events: list[CallEvent]
) -> None:
    matcher = Matcher.build(snapshot)
    reference = ReferenceMatcher(snapshot)
    for event in events:
        assert answer(matcher.match_call(event, NOW)) == answer(reference.match_call(event, NOW))


@PROPERTY_SETTINGS
@given(snapshot=snapshots, events=st.lists(web_events, min_size=1, max_size=5))
def test_web_matches_like_the_reference(
    snapshot: IndicatorSnapshot, events: list[WebEvent]
) -> None:
    matcher = Matcher.build(snapshot)
    reference = ReferenceMatcher(snapshot)
    for event in events:
        assert answer(matcher.match_web(event, NOW)) == answer(reference.match_web(event, NOW))


@PROPERTY_SETTINGS
@given(snapshot=snapshots, event=web_events)
def test_indicators_from_the_event_itself_are_found(
    snapshot: IndicatorSnapshot, event: WebEvent
) -> None:
    """Aim the indicators at the event: its own host and URL prefixes become indicators, so
    the hit paths (not only the misses) are compared."""
    extra: list[Indicator] = []
    for type_, raw in (
        (T.DOMAIN, event.host),
        (T.URL, event.url),
        (T.URL, (event.referrer or "")[:20]),
    ):
        with contextlib.suppress(NormalizationError):
            extra.append(Indicator(type_, normalize(type_, raw or "", "US")))
    aimed = IndicatorSnapshot(
        1, tuple({i.key: i for i in (*snapshot.indicators, *extra)}.values()), snapshot.allowlist
    )
    assert answer(Matcher.build(aimed).match_web(event, NOW)) == answer(
        ReferenceMatcher(aimed).match_web(event, NOW)
    )


@PROPERTY_SETTINGS
@given(
    text=st.text(alphabet="0123456789+-.() /?=&%2Babc", max_size=60),
    region=st.sampled_from(["US", "GB"]),
)
def test_number_extraction_agrees_with_the_hand_written_scan(text: str, region: str) -> None:
    assert numbers_in_text(text, region) == numbers_by_hand(text, region)


@PROPERTY_SETTINGS
@given(
    pieces=st.lists(
        st.tuples(
            st.sampled_from(["", "-", ".", " ", "(", ") ", "-(", "+", "/", "x"]),
            st.from_regex(r"[0-9]{1,5}", fullmatch=True) | numbers_written,
        ),
        min_size=1,
        max_size=12,
    ),
    region=st.sampled_from(["US", "GB"]),
)
def test_numbers_in_runs_with_digits_glued_on_agree_with_the_hand_written_scan(
    pieces: list[tuple[str, str]], region: str
) -> None:
    """Runs of several digit pieces, real numbers among them: the parts read and the
    maximal-parts rule agree with the reference, the budget of part reads included."""
    text = "/" + "".join(sep + digits for sep, digits in pieces)
    assert numbers_in_text(text, region) == numbers_by_hand(text, region)
    long_text = text * 8  # past the budget of part reads
    assert numbers_in_text(long_text, region) == numbers_by_hand(long_text, region)


@PROPERTY_SETTINGS
@given(snapshot=snapshots, event=call_events, later=st.integers(0, 2 * 10**6))
def test_expiry_is_judged_at_match_time(
    snapshot: IndicatorSnapshot, event: CallEvent, later: int
) -> None:
    """One matcher, asked at two moments, agrees with the reference at both."""
    matcher = Matcher.build(snapshot)
    reference = ReferenceMatcher(snapshot)
    for at in (NOW, NOW + later):
        assert answer(matcher.match_call(event, at)) == answer(reference.match_call(event, at))
