"""RFC 3339 times, read and written in one place (events, alerts, dead letters, feeds).

The rule: RFC 3339 section 5.6 date-time, whose NOTE allows a lower-case ``t`` and ``z``, so
both are accepted; a space for the ``T`` is accepted too (section 5.6's NOTE, and what
schemas/*.json say); a time without an offset is read as UTC. Epoch milliseconds are
accepted where a record allows them, within 2000-01-01 .. 2100-01-01 (which catches epoch
seconds). Times are written as UTC with milliseconds and an upper-case ``Z``
(``2026-11-28T20:56:41.123Z``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# epoch milliseconds must fall in a sane window (2000-01-01 .. 2100-01-01)
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000

# RFC 3339 date-time as in schemas/*.json (fromisoformat alone also takes week dates, dates
# without a time, basic format...)
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|z|[+-][0-9]{2}:[0-9]{2})?"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 date-time → epoch milliseconds (exact: no float rounding; a finer
    fraction is cut to the millisecond). Raises ``ValueError`` when ``text`` is no RFC 3339
    date-time or names no real moment (``2026-02-30T...``).

    The form this module writes (``2026-11-28T20:56:41.123Z``: alerts, sightings) is read
    through its second, cached as :func:`format_rfc3339` caches it (a worker reads the event
    time of every web alert of the cluster; the whole parse costs microseconds)."""
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        ms = text[20:23]
        if ms.isascii() and ms.isdigit():
            try:
                return _second_ms(text[:19]) + int(ms)
            except ValueError:
                pass  # said by the whole parse, with the whole text
    return _parse(text)


@lru_cache(maxsize=4096)
def _second_ms(second: str) -> int:
    """``2026-11-28T20:56:41`` (UTC) → epoch milliseconds."""
    return _parse(f"{second}Z")


def _parse(text: str) -> int:
    if not RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # Python 3.11's fromisoformat refuses a lower-case t/z, which RFC 3339 allows (the
        # upper-case spelling, by far the most common, pays nothing for it)
        moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def is_epoch_ms(ms: int) -> bool:
    """True when ``ms`` is epoch milliseconds within 2000-01-01 .. 2100-01-01."""
    return MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS


def format_rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds → ``2026-11-28T20:56:41.123Z``."""
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{_second(seconds)}{ms:03d}Z"


@lru_cache(maxsize=4096)
def _second(epoch_s: int) -> str:
    """``2026-11-28T20:56:41.`` (formatting a datetime costs microseconds; records of one
    moment share their second)."""
    moment = _EPOCH + timedelta(seconds=epoch_s)
    return f"{moment:%Y-%m-%dT%H:%M:%S}."
