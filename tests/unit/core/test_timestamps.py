"""One RFC 3339 rule for events, alerts, dead letters and feeds (engine.core.timestamps)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.events import decode_call, decode_record, event_ts_ms
from engine.core.feeds import format_timestamp, parse_timestamp
from engine.core.models import Stream
from engine.core.timestamps import _parse, format_rfc3339, is_epoch_ms, parse_rfc3339
from engine.errors import DecodeError, FeedError

MIDNIGHT = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00z",  # RFC 3339 section 5.6 NOTE: lower-case t and z allowed
        "2026-01-01T00:00:00z",
        "2026-01-01t00:00:00Z",
        "2026-01-01 00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2025-12-31T19:00:00-05:00",
        "2026-01-01T00:00:00",  # no offset: UTC
        "2026-01-01T00:00:00.000z",
    ],
)
def test_every_spelling_of_one_moment_reads_the_same(text: str) -> None:
    assert parse_rfc3339(text) == MIDNIGHT


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01",
        "2026-01-01T00:00Z",
        "20260101T000000Z",
        "2026-W01-4",
        "2026-02-30T00:00:00Z",  # no such day
        "2026-01-01T00:00:00Zz",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00,5Z",
    ],
)
def test_what_is_no_rfc3339_date_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_milliseconds_are_exact_and_finer_fractions_cut() -> None:
    # float arithmetic (timestamp() * 1000) reads .332 as 331.99...; this must not
    assert parse_rfc3339("2026-01-01T00:00:00.332Z") == MIDNIGHT + 332
    assert parse_rfc3339("2026-01-01T00:00:00.3329Z") == MIDNIGHT + 332
    assert parse_rfc3339("2026-01-01T00:00:00.5Z") == MIDNIGHT + 500


def test_written_as_utc_with_milliseconds_and_upper_case_z() -> None:
    assert format_rfc3339(MIDNIGHT + 7) == "2026-01-01T00:00:00.007Z"
    assert format_rfc3339(1_764_000_000_123) == "2025-11-24T16:00:00.123Z"
    for ms in (MIDNIGHT, MIDNIGHT + 999, 946_684_800_000, 4_102_444_800_000 - 1):
        assert parse_rfc3339(format_rfc3339(ms)) == ms


# texts of the written form's shape (24 characters, "." at 19, "Z" at 23): real moments
# with each separator, and digits or anything else where the digits go
_SHAPED = st.one_of(
    st.builds(
        lambda moment, sep: f"{moment:%Y-%m-%d}{sep}{moment:%H:%M:%S}.{moment:%f}"[:23] + "Z",
        st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["T", "t", " "]),
    ),
    st.builds(
        lambda date, sep, time, ms: f"{date}{sep}{time}.{ms}Z",
        st.one_of(
            st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
            st.text(min_size=10, max_size=10),
        ),
        st.sampled_from(["T", "t", " ", "x"]),
        st.one_of(
            st.from_regex(r"[0-9]{2}:[0-9]{2}:[0-9]{2}", fullmatch=True),
            st.text(min_size=8, max_size=8),
        ),
        st.one_of(
            st.from_regex(r"[0-9]{3}", fullmatch=True),
            st.sampled_from(["\u00b2\u00b2\u00b2", "\uff11\uff12\uff13", "12a", "-12", " 12"]),
        ),
    ),
)


@given(_SHAPED)
def test_the_written_form_reads_as_the_whole_parse_reads_it(text: str) -> None:
    # the cached fast path for the form scamwatch writes: the same milliseconds, or the
    # same refusal (with the whole text in the message)
    try:
        expected: int | str = _parse(text)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: int | str = parse_rfc3339(text)
    except ValueError as exc:
        got = str(exc)
    assert got == expected


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000 - 1))
def test_what_is_written_reads_back(ms: int) -> None:
    assert parse_rfc3339(format_rfc3339(ms)) == ms


def test_epoch_ms_window() -> None:
    assert is_epoch_ms(MIDNIGHT)
    assert not is_epoch_ms(MIDNIGHT // 1000)  # epoch seconds
    assert not is_epoch_ms(4_102_444_800_001)


def test_events_and_feeds_follow_the_same_rule() -> None:
    """Events once refused the lower-case z that feeds accepted: both accept it now."""
    raw = (
        b'{"event_id":"e","ts":"2026-01-01t00:00:00.250z","partner_id":"p",'
        b'"caller":"x","callee":"y"}'
    )
    assert decode_record(Stream.CALLS, raw)[1] == MIDNIGHT + 250
    assert decode_call(raw).ts == "2026-01-01t00:00:00.250z"  # kept as received
    assert event_ts_ms("2026-01-01t00:00:00.250z") == MIDNIGHT + 250
    assert parse_timestamp("valid_until", "2026-01-01t00:00:00.250z") == MIDNIGHT + 250
    assert format_timestamp(MIDNIGHT + 250) == format_rfc3339(MIDNIGHT + 250)
    bad = raw.replace(b"t00:00:00.250z", b"T00:00Z")
    with pytest.raises(DecodeError, match="ts: "):
        decode_call(bad)
    with pytest.raises(FeedError, match="valid_until: "):
        parse_timestamp("valid_until", "2026-01-01T00:00Z")
