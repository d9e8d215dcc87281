"""Matcher benchmark: build time, memory and events/s at 10k / 100k / 1M indicators.

For each size, in a fresh subprocess (so its RSS is its own), pinned to one core:

- a seeded generator makes the indicators (phones, phone prefixes, domains, URLs, keywords
  in the proportions feeds have) and a realistic event mix (mostly clean; a few percent hit
  a number, a prefix block, a domain, a URL, a number inside a URL, a look-alike keyword;
  numbers and URLs written in the forms CDRs and proxies carry);
- ``Matcher.build`` time and the RSS it adds (psutil);
- call and web events/s through decode → normalize → match, one pass over cold caches;
- the reference matcher (loops over every indicator) on a sample of the same events, and the
  ratio;
- Hyperscan on the same literal patterns (domains, URLs, keywords) for the string-search
  part, against the matcher's own search (label-suffix dicts, URL prefix dicts, keyword
  automaton) over the same normalized host and URL strings.

Prints a rich table, writes ``benchmarks/results/bench_matcher.json`` and a PNG plot of
throughput against indicator count. Ratios compare figures measured in the same run.

    .venv/bin/python benchmarks/bench_matcher.py                 # 10k, 100k, 1M
    .venv/bin/python benchmarks/bench_matcher.py --sizes 10000   # quicker
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.events import decode_call, decode_web
from engine.core.matcher import Matcher, strip_port
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType
from engine.core.normalize import fold_confusables, split_url
from engine.devtools.reference import ReferenceMatcher
from engine.store.loading import load_items
from engine.store.memory import MemoryStore

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
AT_MS = 1_767_225_600_000  # 2026-01-01, the time every event is matched at
T = IndicatorType

# share of each indicator type in a feed mix (keywords are few: brand lists are short)
PROPORTIONS = {
    T.PHONE: 0.55,
    T.PHONE_PREFIX: 0.01,
    T.DOMAIN: 0.284,
    T.URL: 0.15,
    T.KEYWORD: 0.006,
}
MAX_KEYWORDS = 3_000
BRANDS = [
    "microsoft",
    "windows",
    "outlook",
    "office365",
    "amazon",
    "prime",
    "apple",
    "icloud",
    "paypal",
    "norton",
    "mcafee",
    "geeksquad",
    "bestbuy",
    "netflix",
    "google",
    "gmail",
    "facebook",
    "coinbase",
    "binance",
    "wellsfargo",
    "chase",
    "bankofamerica",
    "att",
    "verizon",
    "comcast",
    "xfinity",
    "dell",
    "hp",
    "lenovo",
    "avast",
]
TERMS = [
    "support",
    "helpdesk",
    "helpline",
    "refund",
    "billing",
    "security",
    "alert",
    "help",
    "service",
    "care",
    "tech",
    "call",
    "unlock",
    "recovery",
    "verify",
    "login",
    "account",
    "renewal",
    "fix",
    "desk",
]
WORDS = [
    "blue",
    "fast",
    "secure",
    "cloud",
    "net",
    "web",
    "my",
    "pro",
    "online",
    "center",
    "hub",
    "zone",
    "point",
    "quick",
    "info",
    "global",
    "smart",
    "safe",
    "direct",
    "live",
    "shop",
    "store",
    "portal",
    "now",
    "team",
    "one",
    "best",
    "top",
    "express",
    "plus",
]
TLDS = ["com", "net", "org", "xyz", "top", "online", "support", "help", "site", "info", "co.uk"]
SHARED_HOSTS = [
    "bit.ly",
    "tinyurl.com",
    "sites.google.com",
    "storage.googleapis.com",
    "pastebin.com",
    "docs.google.com",
    "onedrive.live.com",
    "dropbox.com",
    "github.io",
    "blogspot.com",
]
POPULAR_HOSTS = [
    "google.com",
    "youtube.com",
    "facebook.com",
    "amazon.com",
    "wikipedia.org",
    "reddit.com",
    "netflix.com",
    "microsoft.com",
    "apple.com",
    "instagram.com",
    "bing.com",
    "yahoo.com",
    "linkedin.com",
    "twitter.com",
    "cnn.com",
    "nytimes.com",
    "ebay.com",
    "twitch.tv",
    "zoom.us",
    "office.com",
    "live.com",
    "github.com",
    "stackoverflow.com",
    "espn.com",
    "walmart.com",
    "target.com",
    "chase.com",
    "paypal.com",
    "dropbox.com",
    "adobe.com",
]
SUBDOMAINS = ["www", "api", "cdn", "m", "static", "img", "login", "accounts", "mail", "news"]


# --------------------------------------------------------------------------- generation


def _us_number(rnd: random.Random) -> str:
    npa = f"{rnd.randint(2, 9)}{rnd.randint(0, 99):02d}"
    nxx = f"{rnd.randint(2, 9)}{rnd.randint(0, 99):02d}"
    return f"+1{npa}{nxx}{rnd.randint(0, 9999):04d}"


def _number(rnd: random.Random) -> str:
    roll = rnd.random()
    if roll < 0.8:
        return _us_number(rnd)
    if roll < 0.9:
        return f"+4420{rnd.randint(0, 99_999_999):08d}"  # London
    return f"+919{rnd.randint(0, 999_999_999):09d}"  # Indian mobile


def _token(rnd: random.Random, k: int) -> str:
    return "".join(rnd.choices(string.ascii_lowercase + string.digits, k=k))


def _domain(rnd: random.Random) -> str:
    name = f"{rnd.choice(WORDS)}-{rnd.choice(BRANDS + WORDS)}-{_token(rnd, 4)}"
    host = f"{name}.{rnd.choice(TLDS)}"
    return f"{rnd.choice(SUBDOMAINS)}.{host}" if rnd.random() < 0.2 else host


def _keywords(rnd: random.Random, n: int) -> list[str]:
    combos = [f"{b}{sep}{t}" for b in BRANDS for t in TERMS for sep in ("-", "")]
    rnd.shuffle(combos)
    return combos[:n]


def generate_snapshot(size: int, seed: int) -> IndicatorSnapshot:
    """``size`` indicators (values already in normal form), loaded into a memory store with
    ``engine.store.loading`` and snapshotted."""
    rnd = random.Random(seed)
    counts = {t: int(size * share) for t, share in PROPORTIONS.items()}
    counts[T.KEYWORD] = min(counts[T.KEYWORD], MAX_KEYWORDS)
    counts[T.DOMAIN] += size - sum(counts.values())
    values: dict[IndicatorType, set[str]] = {t: set() for t in T}
    while len(values[T.PHONE]) < counts[T.PHONE]:
        values[T.PHONE].add(_number(rnd))
    while len(values[T.PHONE_PREFIX]) < counts[T.PHONE_PREFIX]:
        # number blocks: NPA-NXX (10,000 numbers) or NPA-NXX-X (1,000)
        values[T.PHONE_PREFIX].add(_us_number(rnd)[: rnd.choice((8, 9))])
    while len(values[T.DOMAIN]) < counts[T.DOMAIN]:
        values[T.DOMAIN].add(_domain(rnd))
    scam_hosts = sorted(values[T.DOMAIN])  # sorted: a set's order changes with the hash seed
    while len(values[T.URL]) < counts[T.URL]:
        host = rnd.choice(SHARED_HOSTS) if rnd.random() < 0.6 else rnd.choice(scam_hosts)
        values[T.URL].add(f"{host}/{_token(rnd, rnd.randint(5, 10))}")
    values[T.KEYWORD].update(_keywords(rnd, counts[T.KEYWORD]))
    indicators = [
        Indicator(
            t,
            v,
            sources=("bench",),
            confidence=rnd.randint(40, 100),
            valid_until=AT_MS - 1 if rnd.random() < 0.01 else None,  # a few expired
        )
        for t in T
        for v in sorted(values[t])
    ]
    allowlist = [
        Indicator(T.DOMAIN, d) for d in ("microsoft.com", "amazon.com", "apple.com", "paypal.com")
    ] + [Indicator(T.PHONE, "+18006427676"), Indicator(T.PHONE, "+18882804331")]
    store = MemoryStore()  # loaded the way every feed is, then held as a worker holds it
    load_items(indicators, store)
    load_items(allowlist, store, allowlist=True)
    return store.snapshot()


# call partners and how their switches write numbers (share of call traffic, style)
PARTNERS = (
    ("telco-a", 0.5, "e164"),
    ("telco-b", 0.3, "national"),
    ("carrier-uk", 0.1, "intl"),
    ("reseller", 0.1, "formatted"),
)


def _written(rnd: random.Random, e164: str, style: str) -> str:
    """A number as one partner's CDRs carry it."""
    if style == "e164":
        return e164
    if style == "intl" or not e164.startswith("+1"):
        return "00" + e164[1:] if rnd.random() < 0.5 else e164
    n = e164[2:]
    if style == "national":
        return n if rnd.random() < 0.5 else "1" + n
    return rnd.choice(
        [
            f"({n[:3]}) {n[3:6]}-{n[6:]}",
            f"{n[:3]}-{n[3:6]}-{n[6:]}",
            f"+1 {n[:3]} {n[3:6]} {n[6:]}",
            f"{n[:3]}.{n[3:6]}.{n[6:]}",
        ]
    )


@dataclass
class Events:
    calls: list[bytes]
    calls_e164: list[bytes]  # the same calls with every number in E.164
    web: list[bytes]
    call_hits: int
    web_hits: int


def generate_events(snapshot: IndicatorSnapshot, n_calls: int, n_web: int, seed: int) -> Events:
    """Mostly clean traffic with a few percent of hits, in varied written forms."""
    rnd = random.Random(seed + 1)
    by_type: dict[IndicatorType, list[str]] = {t: [] for t in T}
    for ind in snapshot.indicators:
        if ind.valid_until is None:
            by_type[ind.type].append(ind.value)
    subscribers = [_us_number(rnd) for _ in range(50_000)]
    businesses = [_us_number(rnd) for _ in range(2_000)]
    calls: list[bytes] = []
    calls_e164: list[bytes] = []
    call_hits = 0
    partners = [p for p, _, _ in PARTNERS]
    weights = [w for _, w, _ in PARTNERS]
    styles = {p: style for p, _, style in PARTNERS}
    for i in range(n_calls):
        caller = rnd.choice(subscribers)
        callee = rnd.choice(businesses) if rnd.random() < 0.4 else _number(rnd)
        hit = rnd.random()
        if hit < 0.01:
            callee = rnd.choice(by_type[T.PHONE])
        elif hit < 0.015:
            caller = rnd.choice(by_type[T.PHONE])
        elif hit < 0.018:
            # a number inside a listed US block (+1 and ten digits)
            callee = (rnd.choice(by_type[T.PHONE_PREFIX]) + str(rnd.randint(10**9, 10**10)))[:12]
        call_hits += hit < 0.018
        partner = rnd.choices(partners, weights)[0]
        withheld = rnd.random() < 0.04
        record: dict[str, Any] = {
            "event_id": f"call-{i}",
            "ts": AT_MS - rnd.randint(0, 86_400_000),
            "partner_id": partner,
            "caller": "anonymous" if withheld else _written(rnd, caller, styles[partner]),
            "callee": _written(rnd, callee, styles[partner]),
            "subscriber_id": f"sub-{rnd.randint(0, 50_000)}",
            "direction": rnd.choice(("inbound", "outbound")),
            "duration_s": round(rnd.uniform(0, 900), 1),
        }
        as_e164 = {"caller": "anonymous" if withheld else caller, "callee": callee}
        calls_e164.append(msgspec.json.encode(record | as_e164))
        calls.append(msgspec.json.encode(record))

    web: list[bytes] = []
    web_hits = 0
    long_tail = [_domain(rnd).replace("-", "") for _ in range(20_000)]
    for i in range(n_web):
        roll = rnd.random()
        if roll < 0.6:
            host = f"{rnd.choice(SUBDOMAINS)}.{rnd.choice(POPULAR_HOSTS)}"
        else:
            host = rnd.choice(long_tail)
        path = f"/{_token(rnd, rnd.randint(3, 12))}/{_token(rnd, rnd.randint(3, 20))}"
        query = f"?id={rnd.randint(0, 10**6)}&utm_source={rnd.choice(WORDS)}"
        url: str | None = f"https://{host}{path}{query if rnd.random() < 0.5 else ''}"
        referrer = None
        hit = rnd.random()
        if hit < 0.01:
            host = f"{rnd.choice(SUBDOMAINS)}.{rnd.choice(by_type[T.DOMAIN])}"
            url = f"https://{host}{path}"
        elif hit < 0.015:
            url = f"http://{rnd.choice(by_type[T.URL])}{path}"
            host = url.split("/")[2]
        elif hit < 0.018:
            number = rnd.choice(by_type[T.PHONE])
            url = f"https://{host}/call-{number[1:2]}-{number[2:5]}-{number[5:8]}-{number[8:]}"
        elif hit < 0.021:
            brand = rnd.choice(by_type[T.KEYWORD]).replace("o", "0", 1)
            host = f"{brand}-{_token(rnd, 4)}.com"
            url = f"https://{host}{path}"
        elif hit < 0.023:
            referrer = f"https://{rnd.choice(by_type[T.DOMAIN])}/"
        web_hits += hit < 0.023
        kind = rnd.choice(("http", "http", "dns", "tls"))
        record = {
            "event_id": f"web-{i}",
            "ts": AT_MS - rnd.randint(0, 86_400_000),
            "partner_id": rnd.choice(("telco-a", "telco-b")),
            "subscriber_id": f"sub-{rnd.randint(0, 50_000)}",
            "kind": kind,
        }
        if kind == "http":
            record["url"] = url
            if referrer is None and rnd.random() < 0.3:
                referrer = f"https://{rnd.choice(POPULAR_HOSTS)}/search?q={_token(rnd, 8)}"
            if referrer:
                record["referrer"] = referrer
        else:
            record["host"] = host
        web.append(msgspec.json.encode(record))
    return Events(calls, calls_e164, web, call_hits, web_hits)


# --------------------------------------------------------------------------- measuring


def rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def throughput(
    lines: list[bytes], stream: str, matcher: Any, budget_s: float
) -> tuple[float, int, int, float]:
    """(events/s, events done, events matched, events per CPU second) through decode →
    normalize → match. The CPU figure counts only this process's time: on a shared machine
    it moves less with the other load than the wall-clock one."""
    decode = decode_call if stream == "calls" else decode_web
    match = matcher.match_call if stream == "calls" else matcher.match_web
    matched = 0
    done = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + budget_s
    for raw in lines:
        if match(decode(raw), AT_MS).matches:
            matched += 1
        done += 1
        if done % 16 == 0 and time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return done / elapsed, done, matched, done / cpu if cpu > 0 else float("inf")


def agreement(lines: list[bytes], stream: str, matcher: Matcher, ref: ReferenceMatcher) -> bool:
    """The matcher and the reference find the same (rule, field, indicator) on a few events
    the matcher matched and a few it did not (a sanity check of the figures above)."""

    def verdict(m: Matcher | ReferenceMatcher, raw: bytes) -> set[tuple[str, str, str, str]]:
        if stream == "calls":
            found = m.match_call(decode_call(raw), AT_MS)
        else:
            found = m.match_web(decode_web(raw), AT_MS)
        return {(x.rule, x.field, x.indicator.type, x.indicator.value) for x in found.matches}

    hits = clean = 0
    for raw in lines:
        ours = verdict(matcher, raw)
        if (hits if ours else clean) >= 4:
            continue
        if ours != verdict(ref, raw):
            return False
        hits += bool(ours)
        clean += not ours
        if hits >= 4 and clean >= 4:
            break
    return True


def search_inputs(web_lines: list[bytes]) -> list[tuple[str, str, str]]:
    """(host, url tail after the host, folded url) of each web event, normalized once."""
    out: list[tuple[str, str, str]] = []
    for raw in web_lines:
        event = decode_web(raw)
        value = event.url or event.host or ""
        try:
            hostport, rest = split_url(value)
        except ValueError:
            continue
        host = strip_port(hostport)
        url = hostport + rest
        out.append((host, url[len(host) :], fold_confusables(url)))
    return out


def our_search(matcher: Matcher, inputs: list[tuple[str, str, str]]) -> float:
    """events/s of the matcher's string-search part alone (domains, URLs, keywords)."""
    from engine.core.matcher import _url_hits

    domain_hits = matcher._domain_hits
    keyword_hits = matcher._keyword_hits
    urls, lengths = matcher._urls, matcher._url_lengths
    start = time.perf_counter()
    for host, tail, folded in inputs:
        domain_hits(host, AT_MS)
        _url_hits(urls, lengths, host, tail, AT_MS)
        keyword_hits((folded,), AT_MS)
    return len(inputs) / (time.perf_counter() - start)


def hyperscan_search(
    snapshot: IndicatorSnapshot, inputs: list[tuple[str, str, str]]
) -> dict[str, float]:
    """Hyperscan block mode over the same literals, one scan of each event's folded URL
    (the host is in it), start-of-match reported (boundary checks would follow)."""
    import hyperscan

    literals = [
        ind.value.encode()
        for ind in snapshot.indicators
        if ind.type in (T.DOMAIN, T.URL, T.KEYWORD)
    ]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    rss_before = rss_mib()
    start = time.perf_counter()
    database.compile(
        expressions=literals,
        ids=list(range(len(literals))),
        elements=len(literals),
        flags=hyperscan.HS_FLAG_SOM_LEFTMOST,
        literal=True,
    )
    compile_s = time.perf_counter() - start
    hits: list[int] = []

    def on_match(id_: int, start: int, end: int, flags: int, context: Any) -> None:
        hits.append(id_)

    data = [folded.encode() for _, _, folded in inputs]
    scratch = hyperscan.Scratch(database)
    start = time.perf_counter()
    for text in data:
        database.scan(text, match_event_handler=on_match, scratch=scratch)
    eps = len(data) / (time.perf_counter() - start)
    return {
        "patterns": len(literals),
        "compile_s": compile_s,
        "rss_mib": rss_mib() - rss_before,
        "events_per_s": eps,
        "raw_hits": len(hits),
    }


def measure(size: int, seed: int, n_calls: int, n_web: int, ref_budget: float) -> dict[str, Any]:
    """Everything for one size (run in its own process)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core
    t0 = time.perf_counter()
    snapshot = generate_snapshot(size, seed)
    events = generate_events(snapshot, n_calls, n_web, seed)
    generate_s = time.perf_counter() - t0
    gc.collect()
    rss_before = rss_mib()
    t0 = time.perf_counter()
    matcher = Matcher.build(snapshot, default_region="US")
    build_s = time.perf_counter() - t0
    gc.collect()
    rss_after = rss_mib()

    calls_eps, calls_done, calls_matched, calls_cpu = throughput(events.calls, "calls", matcher, 60)
    e164_eps, _, _, e164_cpu = throughput(events.calls_e164, "calls", matcher, 60)
    web_eps, web_done, web_matched, web_cpu = throughput(events.web, "web", matcher, 60)
    reference = ReferenceMatcher(snapshot, default_region="US")
    ref_calls_eps, ref_calls_done, _, _ = throughput(events.calls, "calls", reference, ref_budget)
    ref_web_eps, ref_web_done, _, _ = throughput(events.web, "web", reference, ref_budget)
    agrees = agreement(events.calls, "calls", matcher, reference) and agreement(
        events.web, "web", matcher, reference
    )

    inputs = search_inputs(events.web)
    ours = our_search(matcher, inputs)
    hs = hyperscan_search(snapshot, inputs)
    return {
        "size": size,
        "counts": {str(t): n for t, n in matcher.counts(at_ms=AT_MS).items()},
        "generate_s": generate_s,
        "build_s": build_s,
        "rss_before_build_mib": rss_before,
        "rss_after_build_mib": rss_after,
        "rss_build_delta_mib": rss_after - rss_before,
        "calls": {
            "events": calls_done,
            "matched": calls_matched,
            "injected_hits": events.call_hits,
            "events_per_s": calls_eps,
            "e164_events_per_s": e164_eps,
            "events_per_cpu_s": calls_cpu,
            "e164_events_per_cpu_s": e164_cpu,
        },
        "web": {
            "events": web_done,
            "matched": web_matched,
            "injected_hits": events.web_hits,
            "events_per_s": web_eps,
            "events_per_cpu_s": web_cpu,
        },
        "reference": {
            "agrees_on_sample": agrees,
            "calls_events": ref_calls_done,
            "calls_events_per_s": ref_calls_eps,
            "web_events": ref_web_done,
            "web_events_per_s": ref_web_eps,
            "calls_ratio": calls_eps / ref_calls_eps,
            "web_ratio": web_eps / ref_web_eps,
        },
        "search": {
            "inputs": len(inputs),
            "matcher_events_per_s": ours,
            "hyperscan": hs,
            "matcher_over_hyperscan": ours / hs["events_per_s"],
        },
    }


# --------------------------------------------------------------------------- report


def table(results: list[dict[str, Any]], date: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    main = Table(title=f"Matcher, one core, {date}")
    for col in (
        "indicators",
        "build s",
        "RSS Δ MiB",
        "RSS MiB",
        "calls/s (mixed)",
        "calls/s (E.164)",
        "web/s",
        "per CPU s: calls / E.164 / web",
        "calls matched",
        "web matched",
    ):
        main.add_column(col, justify="right")
    base = Table(title="Against baselines measured in the same run")
    for col in (
        "indicators",
        "same answers",
        "ref calls/s",
        "calls × ref",
        "ref web/s",
        "web × ref",
        "search/s",
        "Hyperscan/s",
        "HS compile s",
        "search ÷ HS",
    ):
        base.add_column(col, justify="right")
    for r in results:
        ref, search, calls, web = r["reference"], r["search"], r["calls"], r["web"]
        main.add_row(
            f"{r['size']:,}",
            f"{r['build_s']:.2f}",
            f"{r['rss_build_delta_mib']:.0f}",
            f"{r['rss_after_build_mib']:.0f}",
            f"{calls['events_per_s']:,.0f}",
            f"{calls['e164_events_per_s']:,.0f}",
            f"{web['events_per_s']:,.0f}",
            _per_cpu(calls, web),
            f"{calls['matched'] / calls['events']:.1%}",
            f"{web['matched'] / web['events']:.1%}",
        )
        base.add_row(
            f"{r['size']:,}",
            "yes" if ref["agrees_on_sample"] else "NO",
            f"{ref['calls_events_per_s']:,.1f}",
            f"{ref['calls_ratio']:,.0f}",
            f"{ref['web_events_per_s']:,.1f}",
            f"{ref['web_ratio']:,.0f}",
            f"{search['matcher_events_per_s']:,.0f}",
            f"{search['hyperscan']['events_per_s']:,.0f}",
            f"{search['hyperscan']['compile_s']:.1f}",
            f"{search['matcher_over_hyperscan']:.2f}",
        )
    console.print(main)
    console.print(base)


def _per_cpu(calls: dict[str, Any], web: dict[str, Any]) -> str:
    if "events_per_cpu_s" not in calls:  # results written before the CPU figures
        return "-"
    return (
        f"{calls['events_per_cpu_s']:,.0f} / {calls['e164_events_per_cpu_s']:,.0f}"
        f" / {web['events_per_cpu_s']:,.0f}"
    )


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in results]
    fig, ax = plt.subplots(figsize=(8, 5))
    series = {
        "calls, mixed formats (decode→normalize→match)": [
            r["calls"]["events_per_s"] for r in results
        ],
        "calls, E.164 (decode→normalize→match)": [r["calls"]["e164_events_per_s"] for r in results],
        "web (decode→normalize→match)": [r["web"]["events_per_s"] for r in results],
        "reference, calls": [r["reference"]["calls_events_per_s"] for r in results],
        "reference, web": [r["reference"]["web_events_per_s"] for r in results],
        "matcher string search only": [r["search"]["matcher_events_per_s"] for r in results],
        "Hyperscan string search only": [r["search"]["hyperscan"]["events_per_s"] for r in results],
    }
    for label, values in series.items():
        ax.plot(sizes, values, marker="o", label=label)
    ax.axhline(100_000, color="grey", linestyle=":", linewidth=1)
    ax.axhline(50_000, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("indicators")
    ax.set_ylabel("events per second (one core)")
    ax.set_title("scamwatch matcher throughput (targets at 1M: 100k calls/s, 50k web/s)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


TARGETS = {  # DESIGN.md, judged at the largest size measured (1M by default)
    "build_s": ("≤", 5.0),
    "rss_mib": ("≤", 1024.0),
    "calls_per_s": ("≥", 100_000.0),
    "web_per_s": ("≥", 50_000.0),
    "calls_x_reference": ("≥", 10.0),
    "web_x_reference": ("≥", 10.0),
}


def judge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each design target against the largest size measured: value, target, ok."""
    r = max(results, key=lambda x: x["size"])
    values = {
        "build_s": r["build_s"],
        "rss_mib": r["rss_after_build_mib"],
        "calls_per_s": r["calls"]["events_per_s"],
        "web_per_s": r["web"]["events_per_s"],
        "calls_x_reference": r["reference"]["calls_ratio"],
        "web_x_reference": r["reference"]["web_ratio"],
    }
    out: dict[str, Any] = {"size": r["size"]}
    for name, (op, target) in TARGETS.items():
        value = values[name]
        ok = value <= target if op == "≤" else value >= target
        out[name] = {"value": value, "target": f"{op} {target:g}", "ok": ok}
    return out


def print_targets(verdict: dict[str, Any]) -> None:
    from rich.console import Console

    parts = [
        f"{name} {v['value']:,.2f} ({v['target']}: {'ok' if v['ok'] else 'MISSED'})"
        for name, v in verdict.items()
        if name != "size"
    ]
    Console().print(f"targets at {verdict['size']:,} indicators: " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--calls", type=int, default=200_000, help="call events per size")
    parser.add_argument("--web", type=int, default=100_000, help="web events per size")
    parser.add_argument("--ref-budget", type=float, default=4.0, help="seconds per stream")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size
    parser.add_argument(
        "--render", type=Path, help="only redraw the table and plot from a results JSON file"
    )
    args = parser.parse_args()

    if args.render:
        saved = json.loads(args.render.read_text())
        table(saved["results"], saved["date"])
        print_targets(judge(saved["results"]))
        plot(saved["results"], args.render.with_suffix(".png"))
        return

    if args.one:
        result = measure(args.one, args.seed, args.calls, args.web, args.ref_budget)
        sys.stdout.write(json.dumps(result))
        return

    results: list[dict[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size:,} indicators …", file=sys.stderr, flush=True)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(size),
                "--seed",
                str(args.seed),
                "--calls",
                str(args.calls),
                "--web",
                str(args.web),
                "--ref-budget",
                str(args.ref_budget),
            ],
            capture_output=True,
            check=True,
        )
        results.append(json.loads(child.stdout))
    date = datetime.now(UTC).isoformat(timespec="seconds")
    table(results, date)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": date,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "seed": args.seed,
        "results": results,
        "targets": judge(results),
    }
    print_targets(report["targets"])
    (args.out / "bench_matcher.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "bench_matcher.png")
    print(f"wrote {args.out / 'bench_matcher.json'} and {args.out / 'bench_matcher.png'}")


if __name__ == "__main__":
    main()
