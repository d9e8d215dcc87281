"""One RFC 3339 rule for events, alerts, dead letters and feeds (engine.core.timestamps)."""

from __future__ import annotations

import pytest

from engine.core.events import decode_call, decode_record, event_ts_ms
from engine.core.feeds import format_timestamp, parse_timestamp
from engine.core.models import Stream
from engine.core.timestamps import format_rfc3339, is_epoch_ms, parse_rfc3339
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
