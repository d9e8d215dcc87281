"""Events built to be slow to decode, normalize or match, per field, for the slow-path unit
tests (tests/unit/core/test_hostile_slow_paths.py) and ``benchmarks/bench_hostile.py``.

Each case puts one hostile value of about :data:`HOSTILE_BYTES` in one field of an otherwise
ordinary event: thousands of labels, digit runs, long percent-encodings, many ``?tel=``
parameters, look-alike characters, punycode labels, numbers built to be slow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from engine.core.events import decode_call, decode_web
from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, Stream

# twice the request-line limit of Apache and nginx (8 KiB): longer than any URL a proxy logs
HOSTILE_BYTES = 16_384
AT_MS = 1_767_225_600_000  # 2026-01-01, the time every event is matched at
T = IndicatorType


@dataclass(frozen=True)
class HostileCase:
    name: str
    stream: Stream
    field: str
    value: str

    def raw(self) -> bytes:
        return event_bytes(self.stream, {self.field: self.value})


def event_bytes(stream: Stream, fields: dict[str, str]) -> bytes:
    base: dict[str, object] = {"event_id": "e1", "ts": AT_MS, "partner_id": "p1"}
    if stream is Stream.CALLS:
        base |= {"caller": "+12025550100", "callee": "(202) 555-0111", "subscriber_id": "s1"}
    else:
        base |= {"url": "https://www.example.com/a/b?x=1", "subscriber_id": "s1"}
    return orjson.dumps(base | fields)


TYPICAL = {
    Stream.CALLS: event_bytes(Stream.CALLS, {}),
    Stream.WEB: event_bytes(Stream.WEB, {"host": "www.example.com"}),
}


def _fill(piece: str, prefix: str = "", suffix: str = "") -> str:
    """``prefix`` + ``piece`` repeated to about HOSTILE_BYTES + ``suffix``."""
    room = max(HOSTILE_BYTES - len(prefix) - len(suffix), len(piece))
    return prefix + piece * (room // len(piece)) + suffix


def hostile_cases() -> list[HostileCase]:
    url = "http://x.example/"
    web, calls = Stream.WEB, Stream.CALLS
    tels = "&".join(f"tel=1800555{i % 10_000:04d}" for i in range(HOSTILE_BYTES // 16))
    cases = [
        ("host: 8k labels", web, "host", _fill("a.", suffix="com")),
        ("host: 8k non-ASCII labels", web, "host", _fill("ü.", suffix="de")),
        ("host: punycode labels", web, "host", _fill("xn--bcher-kva.", suffix="de")),
        ("host: look-alikes", web, "host", _fill("mіcrosоft-")),
        ("host: percent-encoded", web, "host", _fill("%41")),
        ("host: digit run", web, "host", _fill("1")),
        ("url: 8k labels", web, "url", _fill("a.", "http://", "com/")),
        ("url: punycode labels", web, "url", _fill("xn--mcrosoft-support-9vn.", "http://", "x/")),
        ("url: digit run", web, "url", _fill("1", url)),
        ("url: one-digit pieces", web, "url", _fill("1-", url)),
        ("url: 7-digit runs", web, "url", _fill("1234567/", url)),
        ("url: 16-digit runs", web, "url", _fill("1-234-567-890-123-456/", url)),
        ("url: many ?tel= params", web, "url", url + "?" + tels),
        ("url: same ?tel= repeated", web, "url", _fill("tel=18005550199&", url + "?")),
        ("url: percent-encoded digits", web, "url", _fill("%2B1", url)),
        ("url: bare percent signs", web, "url", _fill("%", url)),
        ("url: look-alikes", web, "url", _fill("mіcrosоft-suppоrt", url)),
        ("url: 'rn' runs", web, "url", _fill("rn", url)),
        ("url: defanged host", web, "url", _fill("a[.]", "hxxp://", "com/")),
        ("url: userinfo '@'s", web, "url", _fill("@", "http://", "x.example/")),
        ("url: IPv6 colons", web, "url", _fill("1:", "http://[", "]/")),
        ("url: backslashes", web, "url", _fill("\\", url)),
        ("referrer: many ?tel= params", web, "referrer", url + "?" + tels),
        ("caller: digit run", calls, "caller", _fill("1")),
        ("caller: separators", calls, "caller", _fill("1-")),
        ("caller: + and digits", calls, "caller", _fill("1", "+")),
        ("caller: tel: URI", calls, "caller", _fill("1", "tel:+")),
        ("callee: 0011 repeated", calls, "callee", _fill("0011")),
        ("callee: Arabic-Indic digits", calls, "callee", _fill("١")),
        ("callee: letters", calls, "callee", _fill("A", "1-800-")),
        ("callee: extension", calls, "callee", _fill("1", "+18005550199 ext ")),
    ]
    return [HostileCase(n, s, f, v) for n, s, f, v in cases]


def hostile_matcher() -> Matcher:
    """A matcher holding one indicator of each type, so every rule's path runs."""
    inds = (
        Indicator(T.PHONE, "+18005550199", sources=("bench",)),
        Indicator(T.PHONE_PREFIX, "+1800555", sources=("bench",)),
        Indicator(T.DOMAIN, "evil.example", sources=("bench",)),
        Indicator(T.URL, "pay.example/refund", sources=("bench",)),
        Indicator(T.KEYWORD, "microsoft-support", sources=("bench",)),
    )
    return Matcher.build(IndicatorSnapshot(1, inds))


def process_once(matcher: Matcher, stream: Stream, raw: bytes) -> None:
    """Decode, normalize and match one event, as the worker does (a bad one raises)."""
    if stream is Stream.CALLS:
        matcher.match_call(decode_call(raw), AT_MS)
    else:
        matcher.match_web(decode_web(raw), AT_MS)


def calls_made(work: Callable[[], object]) -> int:
    """How many Python and C function calls ``work`` makes: a measure of work that, unlike
    a timing, does not move with the machine's load (the same code and input always count
    the same)."""
    count = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def best_seconds(work: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``work`` (the least disturbed by a busy machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best
