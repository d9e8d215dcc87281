"""A seeded generator of realistic call and web traffic that knows the truth.

It reads the indicator set the demo loads (the bundled sample feeds, or any snapshot) and
writes call.v1 / web.v1 JSON lines built from it, so it knows, for every line, whether it
must alert and under which rules, or which dead-letter reason it must get. Same seed and
same indicators → byte-identical traffic.

Hard cases on purpose: numbers in national, international and out-of-country formats
(``011 44 …`` from the US, ``00 1 …`` from the UK, bare digits), withheld callers
(``anonymous``, ``private``, empty), near-miss numbers one digit away, subdomains,
upper-case and trailing-dot hosts, look-alike domains that must not match at label
boundaries (``notscam.com``, ``scam.com.example.org``), brand keywords written with
confusables (``rn`` for ``m``, ``0`` for ``o``, Cyrillic ``о``, punycode), scam numbers
written inside URLs, scam referrers, genuine Microsoft/Amazon lines and sites on the
allowlist that must NOT alert, and malformed records that must be dead-lettered.

The truth of an event (whether it alerts, under which rules) is what the reference matcher
(:mod:`engine.devtools.reference`, the rules written as plain loops) says of the line as
written, matched at the time the indicators were read: the generator keeps no copy of the
rules. Each case also names the rule it is built to show (or that it must stay quiet), and
a line whose truth says otherwise is a generator bug, refused.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import idna
import orjson
import phonenumbers

from engine.core.discovery import DISCOVERY_SOURCE, DISCOVERY_TAG
from engine.core.events import decode_call, decode_web
from engine.core.models import (
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Rule,
    StatefulRule,
    Stream,
)
from engine.devtools.reference import ReferenceMatcher, domain_under

DEFAULT_SEED = 20261128
# a fixed start time for the bundled files (the demo stamps its own traffic "now")
BUNDLED_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TRAFFIC_DIR = Path(__file__).resolve().parent / "data" / "samples" / "traffic"

PARTNERS: tuple[tuple[str, str], ...] = (
    ("telco-us-east", "US"),
    ("telco-us-west", "US"),
    ("carrier-uk", "GB"),
)
WITHHELD = ("anonymous", "private", "", "Unavailable", "withheld", "RESTRICTED")
_US_AREAS = ("212", "213", "303", "312", "404", "415", "503", "617", "646", "702", "713", "206")
_BENIGN_HOSTS = (
    "www.wikipedia.org",
    "github.com",
    "www.bbc.co.uk",
    "news.ycombinator.com",
    "www.weather.gov",
    "docs.python.org",
    "www.nytimes.com",
    "mail.proton.me",
    "www.reddit.com",
    "cdn.jsdelivr.net",
    "www.espn.com",
    "maps.apple.com",
    "www.netflix.com",
    "accounts.spotify.com",
    "www.booking.com",
    "www.ikea.com",
)
_BENIGN_PATHS = (
    "/",
    "/index.html",
    "/search?q=weather+tomorrow",
    "/wiki/Telephone_number",
    "/news/technology",
    "/login",
    "/account/settings",
    "/static/app.js",
)
_FREE_HOSTING = ("storage.googleapis.com", "firebasestorage.googleapis.com", "pub-3f9a1c.r2.dev")
_SCAM_PATHS = ("/support/", "/windows-defender-alert/", "/help/index.html", "/")
_MALFORMED_KINDS = (
    "invalid_json",  # not JSON at all
    "truncated_json",  # JSON cut off mid-record
    "missing_field",  # a required field absent
    "wrong_type",  # a number where a string is required
    "bad_ts",  # ts that is no time
    "invalid_utf8",  # bytes that are not UTF-8
    "web_without_target",  # web event with neither url nor host
)
_REASON_OF_MALFORMED = {
    "invalid_json": "invalid_json",
    "truncated_json": "invalid_json",
    "missing_field": "schema_violation",
    "wrong_type": "schema_violation",
    "bad_ts": "schema_violation",
    "invalid_utf8": "invalid_utf8",
    "web_without_target": "schema_violation",
}


# ------------------------------------------------------------------------------ indicators


@dataclass(frozen=True, slots=True)
class TrafficIndicators:
    """The normalized values the generator builds traffic from (active ones only)."""

    scam_phones: tuple[str, ...]
    scam_prefixes: tuple[str, ...]
    scam_domains: tuple[str, ...]
    scam_urls: tuple[str, ...]
    keywords: tuple[str, ...]
    allow_phones: tuple[str, ...]
    allow_prefixes: tuple[str, ...]
    allow_domains: tuple[str, ...]
    # scam-feed numbers/domains that the allowlist overrides (a feed's false positive)
    listed_but_allowed_phones: tuple[str, ...]
    listed_but_allowed_domains: tuple[str, ...]
    # what the truth is matched against, and when (the time the values above were picked at)
    snapshot: IndicatorSnapshot = field(compare=False, repr=False)
    at_ms: int

    @classmethod
    def from_snapshot(cls, snapshot: IndicatorSnapshot, at_ms: int) -> TrafficIndicators:
        def values(entries: Iterable[Indicator], type_: IndicatorType) -> list[str]:
            return sorted({i.value for i in entries if i.type is type_ and i.is_active(at_ms)})

        allow_phones = values(snapshot.allowlist, IndicatorType.PHONE)
        allow_prefixes = values(snapshot.allowlist, IndicatorType.PHONE_PREFIX)
        allow_domains = values(snapshot.allowlist, IndicatorType.DOMAIN)
        allow_keywords = set(values(snapshot.allowlist, IndicatorType.KEYWORD))

        def phone_allowed(number: str) -> bool:
            return number in allow_phones or any(number.startswith(p) for p in allow_prefixes)

        phones = values(snapshot.indicators, IndicatorType.PHONE)
        domains = values(snapshot.indicators, IndicatorType.DOMAIN)
        return cls(
            scam_phones=tuple(p for p in phones if _e164_ok(p) and not phone_allowed(p)),
            scam_prefixes=tuple(
                p
                for p in values(snapshot.indicators, IndicatorType.PHONE_PREFIX)
                if not phone_allowed(p)
            ),
            scam_domains=tuple(d for d in domains if not under_any(d, allow_domains)),
            scam_urls=tuple(
                u
                for u in values(snapshot.indicators, IndicatorType.URL)
                if not under_any(_url_host(u), allow_domains)
            ),
            keywords=tuple(
                k
                for k in values(snapshot.indicators, IndicatorType.KEYWORD)
                if k not in allow_keywords
            ),
            allow_phones=tuple(p for p in allow_phones if _e164_ok(p)),
            allow_prefixes=tuple(allow_prefixes),
            allow_domains=tuple(allow_domains),
            listed_but_allowed_phones=tuple(p for p in phones if phone_allowed(p) and _e164_ok(p)),
            listed_but_allowed_domains=tuple(d for d in domains if under_any(d, allow_domains)),
            snapshot=snapshot,
            at_ms=at_ms,
        )


def sample_snapshot() -> IndicatorSnapshot:
    """The bundled sample feeds (scam + allowlist), loaded the way the demo loads them."""
    from engine.devtools.samples import load_sample_feeds
    from engine.store.memory import MemoryStore

    store = MemoryStore()
    load_sample_feeds(store)
    return store.snapshot()


def under_any(host: str, domains: Iterable[str]) -> bool:
    """``host`` equals one of ``domains`` or is a subdomain of one (label boundaries)."""
    return any(domain_under(host, d) for d in domains)


def _url_host(url: str) -> str:
    return url.split("/", 1)[0].split("@")[-1].rsplit(":", 1)[0]


def _e164_ok(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


# ------------------------------------------------------------------------------ the truth


@dataclass(frozen=True, slots=True)
class Truth:
    """What one generated line must produce."""

    line: int  # 0-based line number in its stream's file
    stream: Stream
    case: str  # which hard case it is (for reading failures)
    event_id: str | None  # None for lines with no readable id (malformed)
    # empty: must not alert; stateful rules only in the journey story (JourneyStory)
    rules: frozenset[Rule | StatefulRule] = frozenset()
    deadletter: str | None = None  # the expected dead-letter reason, for malformed lines

    @property
    def should_alert(self) -> bool:
        return bool(self.rules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "stream": str(self.stream),
            "case": self.case,
            "event_id": self.event_id,
            "rules": sorted(str(r) for r in self.rules),
            "deadletter": self.deadletter,
        }


@dataclass(frozen=True, slots=True)
class Traffic:
    """Generated lines of both streams and their truth."""

    calls: tuple[bytes, ...]
    web: tuple[bytes, ...]
    truth: tuple[Truth, ...]

    def lines(self, stream: Stream) -> tuple[bytes, ...]:
        return self.calls if stream is Stream.CALLS else self.web

    def truth_by_event(self) -> dict[tuple[Stream, str], Truth]:
        return {(t.stream, t.event_id): t for t in self.truth if t.event_id and not t.deadletter}

    def expected_deadletters(self) -> Counter[str]:
        return Counter(t.deadletter for t in self.truth if t.deadletter)

    def expected_alerting_events(self) -> int:
        return sum(1 for t in self.truth if t.should_alert)


@dataclass(slots=True)
class Score:
    """Event-level precision/recall of observed alerts against the truth."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    rule_mismatches: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0


def score(traffic: Traffic, observed: dict[tuple[Stream, str], set[str]]) -> Score:
    """Compare ``observed`` ((stream, event_id) → rules alerted) with the truth. An event is
    a true positive when the truth says it alerts and it did; ``rule_mismatches`` lists the
    events whose rule set differs from the expected one."""
    result = Score()
    truth = traffic.truth_by_event()
    for key, expected in truth.items():
        got = observed.get(key, set())
        if expected.should_alert and got:
            result.true_positives += 1
        elif expected.should_alert:
            result.false_negatives += 1
        elif got:
            result.false_positives += 1
        want = {str(r) for r in expected.rules}
        if got != want:
            result.rule_mismatches.append(
                f"{key[0]}/{key[1]} ({expected.case}): expected {sorted(want)}, got {sorted(got)}"
            )
    for key, got in observed.items():
        if key not in truth and got:
            result.false_positives += 1
            result.rule_mismatches.append(f"{key[0]}/{key[1]}: unknown event alerted {sorted(got)}")
    return result


# ------------------------------------------------------------------------------ generator


def _ts(ms: int, as_text: bool) -> str | int:
    if not as_text:
        return ms
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _confusable_variants(keyword: str) -> list[str]:
    """Ways a scammer writes ``keyword`` so that it reads the same (folded back by the
    matcher): ``rn`` for ``m``, ``0`` for ``o``, ``1`` for ``l``, Cyrillic ``о`` for ``o``."""
    out: list[str] = []
    if "m" in keyword:
        out.append(keyword.replace("m", "rn", 1))
    if "o" in keyword:
        out.append(keyword.replace("o", "0", 1))
        out.append(keyword.replace("o", "\u043e", 1))  # Cyrillic small o
    if "l" in keyword:
        out.append(keyword.replace("l", "1", 1))
    return out


class _Generator:
    def __init__(
        self, facts: TrafficIndicators, seed: int, start_ms: int, gap_ms: tuple[int, int]
    ) -> None:
        self.facts = facts
        self.reference = ReferenceMatcher(facts.snapshot)
        self.gap_ms = gap_ms
        self.rng = random.Random(seed)
        self.clock = start_ms
        self.counter = 0
        self.scam_phone_set = set(facts.scam_phones)
        self.keywords = tuple(k for k in facts.keywords if k)
        self.subscribers: dict[str, list[tuple[str, str]]] = {
            partner: [
                (f"{partner.rsplit('-', 1)[-1]}-sub-{n:04d}", self.clean_number(region))
                for n in range(40)
            ]
            for partner, region in PARTNERS
        }

    # -- shared helpers -----------------------------------------------------------------

    def next_ts(self, as_text: bool | None = None) -> str | int:
        self.clock += self.rng.randint(*self.gap_ms)
        return _ts(self.clock, self.rng.random() < 0.5 if as_text is None else as_text)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:06d}"

    def partner(self) -> tuple[str, str]:
        return self.rng.choice(PARTNERS)

    def number_is_clean(self, e164: str) -> bool:
        f = self.facts
        return (
            e164 not in self.scam_phone_set
            and not any(e164.startswith(p) for p in f.scam_prefixes)
            and e164 not in f.allow_phones
            and not any(e164.startswith(p) for p in f.allow_prefixes)
            and _e164_ok(e164)
        )

    def clean_number(self, region: str) -> str:
        while True:
            if region == "GB" and self.rng.random() < 0.7:
                e164 = f"+4479{self.rng.randint(10_000_000, 99_999_999)}"
            else:
                area = self.rng.choice(_US_AREAS)
                e164 = (
                    f"+1{area}{self.rng.randint(2, 9)}{self.rng.randint(0, 99):02d}"
                    f"{self.rng.randint(0, 9999):04d}"
                )
            if self.number_is_clean(e164):
                return e164

    def written(self, e164: str, region: str) -> str:
        """``e164`` as a person or a switch in ``region`` would write it."""
        num = phonenumbers.parse(e164)
        home = phonenumbers.region_code_for_number(num) == region
        fmt = phonenumbers.PhoneNumberFormat
        forms = [
            e164,
            phonenumbers.format_number(num, fmt.INTERNATIONAL),
            phonenumbers.format_out_of_country_calling_number(num, region),
        ]
        if home:
            national = phonenumbers.format_number(num, fmt.NATIONAL)
            forms += [national, "".join(ch for ch in national if ch.isdigit())]
            if region == "US":
                digits = e164[1:]
                forms += [
                    digits,
                    f"{digits[1:4]}.{digits[4:7]}.{digits[7:]}",
                    f"1-{digits[1:4]}-{digits[4:7]}-{digits[7:]}",
                ]
        return self.rng.choice(forms)

    def near_miss(self, e164: str) -> str | None:
        """``e164`` with one digit changed, when that is a clean valid number."""
        for _ in range(20):
            pos = self.rng.randrange(len(e164) - 4, len(e164))
            digit = str((int(e164[pos]) + self.rng.randint(1, 9)) % 10)
            candidate = e164[:pos] + digit + e164[pos + 1 :]
            if self.number_is_clean(candidate):
                return candidate
        return None

    def clean_host(self) -> str:
        return self.rng.choice(_BENIGN_HOSTS)

    # -- calls ----------------------------------------------------------------------------

    def call(
        self,
        case: str,
        *,
        caller: str,
        callee: str,
        region: str,
        partner: str,
        subscriber: str,
        direction: str,
        line: int,
        shows: Rule | None = None,
        quiet: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> tuple[bytes, Truth]:
        event_id = self.next_id("call")
        record: dict[str, Any] = {
            "event_id": event_id,
            "ts": self.next_ts(),
            "partner_id": partner,
            "caller": caller,
            "callee": callee,
            "subscriber_id": subscriber,
            "direction": direction,
            "duration_s": round(self.rng.uniform(0, 900), 1),
        }
        if region != "US" or self.rng.random() < 0.3:
            record["region"] = region
        if self.rng.random() < 0.6:
            record["attestation"] = self.rng.choice("ABC")
        if extra:
            record.update(extra)
        raw = orjson.dumps(record)
        return raw, self.truth(Stream.CALLS, case, line, event_id, raw, shows=shows, quiet=quiet)

    def call_event(self, case: str, line: int) -> tuple[bytes, Truth]:
        f = self.facts
        partner, region = self.partner()
        subscriber, home = self.rng.choice(self.subscribers[partner])
        mine = self.written(home, region)
        other_clean = self.written(self.clean_number(region), region)
        kw: dict[str, Any] = {
            "region": region,
            "partner": partner,
            "subscriber": subscriber,
            "line": line,
        }
        if case == "callee_scam":  # the call-back scam: the subscriber dials the fake support
            scam = self.written(self.rng.choice(f.scam_phones), region)
            return self.call(
                case,
                caller=mine,
                callee=scam,
                direction="outbound",
                shows=Rule.CALLEE_SCAM_NUMBER,
                **kw,
            )
        if case == "caller_scam":  # a scam centre rings the subscriber
            scam = self.written(self.rng.choice(f.scam_phones), region)
            return self.call(
                case,
                caller=scam,
                callee=mine,
                direction="inbound",
                shows=Rule.CALLER_SCAM_NUMBER,
                **kw,
            )
        if case == "prefix_block":  # a number inside a listed block
            prefix = self.rng.choice(f.scam_prefixes)
            number = self.number_under_prefix(prefix)
            if number is None:
                return self.call_event("callee_scam", line)
            return self.call(
                case,
                caller=mine,
                callee=self.written(number, region),
                direction="outbound",
                shows=Rule.CALLEE_SCAM_NUMBER,
                **kw,
            )
        if case == "withheld_to_scam":  # withheld caller: not matched, the callee still is
            scam = self.written(self.rng.choice(f.scam_phones), region)
            return self.call(
                case,
                caller=self.rng.choice(WITHHELD),
                callee=scam,
                direction="outbound",
                shows=Rule.CALLEE_SCAM_NUMBER,
                **kw,
            )
        if case == "withheld_clean":
            return self.call(
                case,
                caller=self.rng.choice(WITHHELD),
                callee=mine,
                direction="inbound",
                quiet=True,
                **kw,
            )
        if case == "genuine_support":  # the real Microsoft/Amazon line: allowlisted
            pool = f.allow_phones + f.listed_but_allowed_phones
            genuine = self.written(self.rng.choice(pool), region)
            return self.call(
                case, caller=mine, callee=genuine, direction="outbound", quiet=True, **kw
            )
        if case == "near_miss":  # one digit away from a scam number
            near = self.near_miss(self.rng.choice(f.scam_phones))
            callee = self.written(near, region) if near else other_clean
            return self.call(
                case, caller=mine, callee=callee, direction="outbound", quiet=True, **kw
            )
        # clean
        inbound = self.rng.random() < 0.5
        return self.call(
            "clean",
            caller=other_clean if inbound else mine,
            callee=mine if inbound else other_clean,
            direction="inbound" if inbound else "outbound",
            quiet=True,
            **kw,
        )

    def number_under_prefix(self, prefix: str) -> str | None:
        for _ in range(50):
            # E.164 numbers have up to 15 digits; NANP ones 11
            total = 11 if prefix.startswith("+1") else 12
            tail = "".join(str(self.rng.randint(0, 9)) for _ in range(total - (len(prefix) - 1)))
            candidate = prefix + tail
            if _e164_ok(candidate) and candidate not in self.facts.allow_phones:
                return candidate
        return None

    # -- web ------------------------------------------------------------------------------

    def web(
        self,
        case: str,
        *,
        line: int,
        shows: Rule | None = None,
        quiet: bool = False,
        url: str | None = None,
        host: str | None = None,
        referrer: str | None = None,
        kind: str | None = None,
    ) -> tuple[bytes, Truth]:
        partner, _ = self.partner()
        subscriber, _ = self.rng.choice(self.subscribers[partner])
        event_id = self.next_id("web")
        record: dict[str, Any] = {
            "event_id": event_id,
            "ts": self.next_ts(),
            "partner_id": partner,
            "subscriber_id": subscriber,
        }
        if url is not None:
            record["url"] = url
        if host is not None:
            record["host"] = host
        if referrer is not None:
            record["referrer"] = referrer
        record["kind"] = kind or ("http" if url else self.rng.choice(("dns", "tls")))
        if self.rng.random() < 0.2:
            record["client_ip"] = f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.7"
        raw = orjson.dumps(record)
        return raw, self.truth(Stream.WEB, case, line, event_id, raw, shows=shows, quiet=quiet)

    def truth(
        self,
        stream: Stream,
        case: str,
        line: int,
        event_id: str,
        raw: bytes,
        *,
        shows: Rule | None,
        quiet: bool,
    ) -> Truth:
        """What the reference matcher says of ``raw``; refused when that is not what the case
        was built to show (``shows`` among the rules; no rule at all when ``quiet``)."""
        if stream is Stream.CALLS:
            verdict = self.reference.match_call(decode_call(raw), self.facts.at_ms)
        else:
            verdict = self.reference.match_web(decode_web(raw), self.facts.at_ms)
        rules = frozenset(m.rule for m in verdict.matches)
        if (shows is not None and shows not in rules) or (quiet and rules):
            wanted = str(shows) if shows is not None else "no alert"
            raise RuntimeError(
                f"traffic generator bug: {stream}/{event_id} ({case}) was built to show "
                f"{wanted}; the reference matcher says {sorted(map(str, rules))}"
            )
        return Truth(line, stream, case, event_id, rules)

    def web_event(self, case: str, line: int) -> tuple[bytes, Truth]:
        f = self.facts
        rng = self.rng
        if case == "scam_host":  # DNS / SNI of a listed domain
            host = rng.choice(f.scam_domains)
            return self.web(case, line=line, host=host, shows=Rule.HOST_SCAM_DOMAIN)
        if case == "scam_subdomain":
            host = f"{rng.choice(('secure', 'login', 'help', 'www'))}.{rng.choice(f.scam_domains)}"
            url = f"https://{host}{rng.choice(_SCAM_PATHS)}"
            return self.web(case, line=line, url=url, shows=Rule.HOST_SCAM_DOMAIN)
        if case == "scam_host_odd_form":  # upper case and a trailing dot (as DNS logs write it)
            domain = rng.choice(f.scam_domains)
            return self.web(
                case,
                line=line,
                host=domain.upper() + ".",
                kind="dns",
                shows=Rule.HOST_SCAM_DOMAIN,
            )
        if case == "lookalike_boundary":  # contains a scam domain, but not at a label boundary
            domain = rng.choice([d for d in f.scam_domains if "xn--" not in d] or f.scam_domains)
            host = rng.choice((f"not{domain}", f"{domain}.example.org"))
            return self.web(case, line=line, host=host)  # may still hold a brand keyword
        if case == "keyword_lookalike":  # brand keyword written with confusables
            return self.keyword_event(line)
        if case == "scam_url" and f.scam_urls:
            target = rng.choice(f.scam_urls)
            url = f"https://{target}"
            return self.web(case, line=line, url=url, shows=Rule.URL_SCAM_URL)
        if case == "number_in_url":  # a scam number written in a free-hosting page URL
            digits = rng.choice([p for p in f.scam_phones if p.startswith("+1")] or f.scam_phones)
            d = digits[1:]
            written = rng.choice(
                (
                    f"/call-{d[0]}-{d[1:4]}-{d[4:7]}-{d[7:]}"
                    if d.startswith("1")
                    else f"/call-{d}",
                    f"/index.html?tel=%2B{d}",
                    f"/alert.html?phone={d}",
                )
            )
            host = rng.choice(_FREE_HOSTING)
            url = f"https://{host}/b{rng.randrange(16**6):06x}{written}"
            return self.web(case, line=line, url=url, shows=Rule.URL_SCAM_NUMBER)
        if case == "scam_referrer":  # a clean page reached from a scam landing page
            referrer = f"https://{rng.choice(f.scam_domains)}{rng.choice(_SCAM_PATHS)}"
            url = f"https://{self.clean_host()}/"
            return self.web(
                case, line=line, url=url, referrer=referrer, shows=Rule.REFERRER_SCAM_DOMAIN
            )
        if case == "genuine_support":  # Microsoft/Amazon's own sites: allowlisted
            pool = f.allow_domains + f.listed_but_allowed_domains
            domain = rng.choice(pool)
            host = rng.choice((domain, f"support.{domain}", f"www.{domain}"))
            pick = rng.random()
            if pick < 0.4:
                return self.web(case, line=line, host=host, quiet=True)
            if pick < 0.7 or not self.keywords:
                return self.web(case, line=line, url=f"https://{host}/contact-us", quiet=True)
            # the genuine site's own page about the scam: a brand keyword in an allowlisted URL
            topic = rng.choice(self.keywords)
            url = f"https://{host}/en-us/community/{topic}-scam-calls-warning"
            return self.web(case, line=line, url=url, quiet=True)
        # clean
        host = self.clean_host()
        if rng.random() < 0.5:
            return self.web("clean", line=line, host=host, quiet=True)
        return self.web(
            "clean", line=line, url=f"https://{host}{rng.choice(_BENIGN_PATHS)}", quiet=True
        )

    def keyword_event(self, line: int) -> tuple[bytes, Truth]:
        rng = self.rng
        options = [
            (k, v)
            for k in self.keywords
            if _HOST_WORD.fullmatch(k)
            for v in _confusable_variants(k)
        ]
        if not options:
            return self.web_event("clean", line)
        _, variant = rng.choice(options)
        suffix = rng.choice(("help", "desk", "center", "247"))
        host = f"{variant}-{suffix}.{rng.choice(('com', 'net', 'info', 'xyz'))}"
        try:
            ascii_host = host if host.isascii() else idna.encode(host).decode()
        except idna.IDNAError:
            host = ascii_host = f"{variant.replace(chr(0x43E), '0')}-{suffix}.com"
        shows = Rule.KEYWORD_IMPERSONATION
        if rng.random() < 0.5:  # DNS logs carry the punycode form
            return self.web(
                "keyword_lookalike", line=line, host=ascii_host, kind="dns", shows=shows
            )
        return self.web("keyword_lookalike", line=line, url=f"http://{host}/", shows=shows)

    # -- malformed ------------------------------------------------------------------------

    def malformed(self, stream: Stream, kind: str, line: int) -> tuple[bytes, Truth]:
        partner, _ = self.partner()
        ts = self.next_ts(as_text=True)
        base: dict[str, Any] = (
            {
                "event_id": self.next_id("bad"),
                "ts": ts,
                "partner_id": partner,
                "caller": "+12125550100",
                "callee": "+13125550111",
            }
            if stream is Stream.CALLS
            else {
                "event_id": self.next_id("bad"),
                "ts": ts,
                "partner_id": partner,
                "host": "www.example.org",
            }
        )
        raw: bytes
        if kind == "invalid_json":
            raw = b"CDR|" + partner.encode() + b"|+12125550100|+13125550111|garbled"
        elif kind == "truncated_json":
            raw = orjson.dumps(base)[:-9]
        elif kind == "missing_field":
            base.pop("partner_id")
            raw = orjson.dumps(base)
        elif kind == "wrong_type":
            if stream is Stream.CALLS:
                base["callee"] = 18005550199
            else:
                base["host"] = ["www.example.org"]
            raw = orjson.dumps(base)
        elif kind == "bad_ts":
            base["ts"] = "yesterday afternoon"
            raw = orjson.dumps(base)
        elif kind == "invalid_utf8":
            raw = orjson.dumps(base).replace(partner.encode(), b"telco-\xff\xfe", 1)
        else:  # web_without_target (a call event without callee on the calls stream)
            base.pop("host" if stream is Stream.WEB else "callee")
            raw = orjson.dumps(base)
        return raw, Truth(
            line, stream, f"malformed:{kind}", None, deadletter=_REASON_OF_MALFORMED[kind]
        )


# share of each case in a stream (the rest is clean); chosen so a demo shows every rule
_CALL_MIX: tuple[tuple[str, float], ...] = (
    ("callee_scam", 0.08),
    ("caller_scam", 0.05),
    ("prefix_block", 0.03),
    ("withheld_to_scam", 0.02),
    ("withheld_clean", 0.05),
    ("genuine_support", 0.06),
    ("near_miss", 0.04),
)
_WEB_MIX: tuple[tuple[str, float], ...] = (
    ("scam_host", 0.05),
    ("scam_subdomain", 0.04),
    ("scam_host_odd_form", 0.02),
    ("lookalike_boundary", 0.04),
    ("keyword_lookalike", 0.05),
    ("scam_url", 0.03),
    ("number_in_url", 0.03),
    ("scam_referrer", 0.03),
    ("genuine_support", 0.06),
)
MALFORMED_SHARE = 0.02
_HOST_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _plan(
    mix: Sequence[tuple[str, float]], count: int, rng: random.Random, available: set[str]
) -> list[str]:
    """The case of each line: exact counts from the shares (each case at least once), shuffled."""
    cases: list[str] = []
    for case, share in mix:
        if case in available:
            cases += [case] * max(1, round(count * share))
    malformed = max(len(_MALFORMED_KINDS), round(count * MALFORMED_SHARE))
    cases += [f"malformed:{_MALFORMED_KINDS[i % len(_MALFORMED_KINDS)]}" for i in range(malformed)]
    cases += ["clean"] * max(0, count - len(cases))
    rng.shuffle(cases)
    return cases[:count] if len(cases) > count else cases


def generate(
    facts: TrafficIndicators,
    *,
    calls: int = 300,
    web: int = 300,
    seed: int = DEFAULT_SEED,
    start_ms: int = BUNDLED_START_MS,
    gap_ms: tuple[int, int] = (5, 400),
) -> Traffic:
    """Generate ``calls`` call events and ``web`` web events from ``facts`` (deterministic
    for a given seed, facts, start time and gap). Event times start at ``start_ms`` and
    grow by a random gap in ``gap_ms`` per event."""
    gen = _Generator(facts, seed, start_ms, gap_ms)
    call_cases = {"clean", "withheld_clean"}
    if facts.scam_phones:
        call_cases |= {"callee_scam", "caller_scam", "withheld_to_scam", "near_miss"}
    if facts.scam_prefixes:
        call_cases.add("prefix_block")
    if facts.allow_phones or facts.listed_but_allowed_phones:
        call_cases.add("genuine_support")
    web_cases = {"clean"}
    if facts.scam_domains:
        web_cases |= {
            "scam_host",
            "scam_subdomain",
            "scam_host_odd_form",
            "lookalike_boundary",
            "scam_referrer",
        }
    if facts.keywords:
        web_cases.add("keyword_lookalike")
    if facts.scam_urls:
        web_cases.add("scam_url")
    if facts.scam_phones:
        web_cases.add("number_in_url")
    if facts.allow_domains or facts.listed_but_allowed_domains:
        web_cases.add("genuine_support")

    call_lines: list[bytes] = []
    web_lines: list[bytes] = []
    truth: list[Truth] = []
    for i, case in enumerate(_plan(_CALL_MIX, calls, gen.rng, call_cases)):
        if case.startswith("malformed:"):
            kind = case.split(":", 1)[1]
            if kind == "web_without_target":
                kind = "missing_field"
            raw, t = gen.malformed(Stream.CALLS, kind, i)
        else:
            raw, t = gen.call_event(case, i)
        call_lines.append(raw)
        truth.append(t)
    for i, case in enumerate(_plan(_WEB_MIX, web, gen.rng, web_cases)):
        if case.startswith("malformed:"):
            raw, t = gen.malformed(Stream.WEB, case.split(":", 1)[1], i)
        else:
            raw, t = gen.web_event(case, i)
        web_lines.append(raw)
        truth.append(t)
    return Traffic(tuple(call_lines), tuple(web_lines), tuple(truth))


# ------------------------------------------------------------------------------ the journey


@dataclass(frozen=True, slots=True)
class JourneyStory:
    """A seeded tech-support scam journey, in three acts sent one after the other: exposed
    subscribers open a scam page (``pages``); then, one call at a time (``calls``), one of
    them dials the number listed in the feeds and the others an unlisted number, until
    ``min_subscribers`` distinct exposed subscribers called it; once that number is
    discovered and in the store, ``later_calls``: an exposed and an unexposed subscriber
    call it. ``truth`` holds the per-event rules (the reference matcher's; for the later
    calls with the discovered indicator added, as ``SCAMWATCH_DISCOVERY=indicator`` adds it)
    and the stateful ones, counted by hand from the story: ``victim_journey`` for an exposed
    subscriber's call whose other party matched, ``discovered_scam_number`` on the call of
    the ``min_subscribers``-th distinct exposed subscriber to the unlisted number."""

    partner_id: str
    page_url: str
    listed_number: str  # E.164, in the scam feed
    unlisted_number: str  # E.164, in no feed: the one discovered
    exposed: tuple[str, ...]  # subscriber ids who open the page
    pages: tuple[bytes, ...]  # web.v1
    calls: tuple[bytes, ...]  # call.v1, to be sent one at a time, in order
    later_calls: tuple[bytes, ...]  # call.v1, once the number is discovered
    truth: tuple[Truth, ...]
    # later calls whose callee alert the truth matches on the discovered indicator
    discovered_callee_alerts: int

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(t.event_id for t in self.truth if t.event_id)


def journey_story(
    facts: TrafficIndicators,
    *,
    min_subscribers: int = 3,
    seed: int = DEFAULT_SEED,
    start_ms: int = BUNDLED_START_MS,
) -> JourneyStory:
    """The journey story built from ``facts`` (deterministic for a seed, facts and start):
    pages from ``start_ms`` on, calls minutes later, the later calls after those."""
    if not facts.scam_domains or not facts.scam_phones:
        raise ValueError("a journey story needs scam domains and scam numbers")
    gen = _Generator(facts, seed + 1, start_ms, gap_ms=(20_000, 40_000))
    rng = gen.rng
    partner, region = PARTNERS[0]
    domain = rng.choice([d for d in facts.scam_domains if "xn--" not in d] or facts.scam_domains)
    page_url = f"https://{domain}/windows-defender-alert/?ref=popup"
    listed = rng.choice([p for p in facts.scam_phones if p.startswith("+1")] or facts.scam_phones)
    unlisted = gen.clean_number(region)
    # the exposed: one calls the listed number, min_subscribers call the unlisted one;
    # one more subscriber, never exposed, calls it once it is discovered
    subscribers = [
        (f"story-sub-{n:02d}", gen.clean_number(region)) for n in range(min_subscribers + 2)
    ]
    exposed, unexposed = subscribers[:-1], subscribers[-1]
    truth: list[Truth] = []
    counter = 0

    def record(stream: Stream, fields: dict[str, Any]) -> tuple[str, bytes]:
        nonlocal counter
        counter += 1
        event_id = f"story-{stream}-{counter:03d}"
        doc = {"event_id": event_id, "ts": gen.next_ts(as_text=True), "partner_id": partner}
        return event_id, orjson.dumps({**doc, **fields})

    pages: list[bytes] = []
    for sub, _home in exposed:
        event_id, raw = record(Stream.WEB, {"url": page_url, "subscriber_id": sub, "kind": "http"})
        pages.append(raw)
        truth.append(
            gen.truth(
                Stream.WEB,
                "story:page",
                len(pages) - 1,
                event_id,
                raw,
                shows=Rule.HOST_SCAM_DOMAIN,
                quiet=False,
            )
        )
    gen.clock += 180_000  # the calls come minutes after the pop-up

    def call(
        sub: str, home: str, callee: str, case: str, *, shows: Rule | None = None
    ) -> tuple[bytes, Truth]:
        event_id, raw = record(
            Stream.CALLS,
            {
                "caller": gen.written(home, region),
                "callee": gen.written(callee, region),
                "subscriber_id": sub,
                "direction": "outbound",
                "duration_s": round(rng.uniform(60, 1800), 1),
            },
        )
        quiet = shows is None  # a call to the unlisted number must not alert by itself
        return raw, gen.truth(Stream.CALLS, case, 0, event_id, raw, shows=shows, quiet=quiet)

    calls: list[bytes] = []
    exposed_ids = {sub for sub, _ in exposed}
    callers_of_unlisted: set[str] = set()

    def with_stateful(t: Truth, sub: str, to_unlisted: bool) -> Truth:
        rules: set[Rule | StatefulRule] = set(t.rules)
        if sub in exposed_ids and Rule.CALLEE_SCAM_NUMBER in t.rules:
            rules.add(StatefulRule.VICTIM_JOURNEY)  # outbound: the callee is the other party
        if sub in exposed_ids and to_unlisted and not t.rules:
            callers_of_unlisted.add(sub)
            if len(callers_of_unlisted) == min_subscribers:
                rules.add(StatefulRule.DISCOVERED_SCAM_NUMBER)
        return dataclasses.replace(t, rules=frozenset(rules))

    first, *rest = exposed
    raw, t = call(*first, listed, "story:listed_number", shows=Rule.CALLEE_SCAM_NUMBER)
    calls.append(raw)
    truth.append(dataclasses.replace(with_stateful(t, first[0], False), line=len(calls) - 1))
    for sub, home in rest:
        raw, t = call(sub, home, unlisted, "story:unlisted_number")
        calls.append(raw)
        truth.append(dataclasses.replace(with_stateful(t, sub, True), line=len(calls) - 1))
    if len(callers_of_unlisted) < min_subscribers:
        raise RuntimeError("traffic generator bug: the unlisted number would not be discovered")

    # what SCAMWATCH_DISCOVERY=indicator adds; the later calls are matched with it
    discovered = Indicator(
        IndicatorType.PHONE, unlisted, sources=(DISCOVERY_SOURCE,), tags=(DISCOVERY_TAG,)
    )
    snapshot = facts.snapshot
    gen.reference = ReferenceMatcher(
        dataclasses.replace(snapshot, indicators=(*snapshot.indicators, discovered))
    )
    gen.clock += 60_000
    later: list[bytes] = []
    from_discovery = 0
    for sub, home in (first, unexposed):
        raw, t = call(sub, home, unlisted, "story:discovered_number", shows=Rule.CALLEE_SCAM_NUMBER)
        verdict = gen.reference.match_call(decode_call(raw), facts.at_ms)
        from_discovery += any(
            m.rule is Rule.CALLEE_SCAM_NUMBER and DISCOVERY_SOURCE in m.indicator.sources
            for m in verdict.matches
        )
        later.append(raw)
        truth.append(
            dataclasses.replace(with_stateful(t, sub, False), line=len(calls) + len(later) - 1)
        )
    return JourneyStory(
        partner_id=partner,
        page_url=page_url,
        listed_number=listed,
        unlisted_number=unlisted,
        exposed=tuple(sub for sub, _ in exposed),
        pages=tuple(pages),
        calls=tuple(calls),
        later_calls=tuple(later),
        truth=tuple(truth),
        discovered_callee_alerts=from_discovery,
    )


def write_traffic(traffic: Traffic, directory: Path) -> dict[str, Path]:
    """Write ``calls.jsonl``, ``web.jsonl`` and ``truth.jsonl`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.jsonl" for name in ("calls", "web", "truth")}
    paths["calls"].write_bytes(b"".join(line + b"\n" for line in traffic.calls))
    paths["web"].write_bytes(b"".join(line + b"\n" for line in traffic.web))
    paths["truth"].write_bytes(
        b"".join(
            orjson.dumps(t.as_dict(), option=orjson.OPT_SORT_KEYS) + b"\n" for t in traffic.truth
        )
    )
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Write sample traffic made from the bundled sample feeds into OUT (calls.jsonl,
    web.jsonl, truth.jsonl). The bundled files are the defaults written into
    engine/devtools/data/samples/traffic of a source checkout; other sizes and seeds make
    bigger replays."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m engine.devtools.traffic", description=main.__doc__
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="directory to write into")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--web", type=int, default=300)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--start-ms", type=int, default=BUNDLED_START_MS)
    args = parser.parse_args(argv)
    facts = TrafficIndicators.from_snapshot(sample_snapshot(), args.start_ms)
    traffic = generate(
        facts, calls=args.calls, web=args.web, seed=args.seed, start_ms=args.start_ms
    )
    for name, path in write_traffic(traffic, args.out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
