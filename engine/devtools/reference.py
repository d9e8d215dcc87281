"""The reference matcher: the matching rules as plain loops over every indicator.

Deliberately simple and slow (no indexes, no automata, no caches): it exists so property
tests can hold :class:`engine.core.matcher.Matcher` to exactly the same answers, and so the
benchmark has a naive baseline. Same normalization functions, same rules (see the module
docstring of :mod:`engine.core.matcher`).
"""

from __future__ import annotations

from urllib.parse import unquote

from engine.core.events import CallEvent, WebEvent
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, Match, Rule, Verdict
from engine.core.normalize import (
    fold_confusables,
    host_to_unicode,
    normalize_domain,
    normalize_phone,
    normalize_url,
)
from engine.errors import NormalizationError

_DIGITS = "0123456789"
_SEPARATORS = "+-.() "


class ReferenceMatcher:
    """Same interface as :class:`Matcher` for matching; every lookup is a full scan."""

    def __init__(self, snapshot: IndicatorSnapshot, *, default_region: str = "US") -> None:
        self.version = snapshot.version
        self.indicators = list(snapshot.indicators)
        self.allowlist = list(snapshot.allowlist)
        self.default_region = default_region.upper()

    # -- calls ---------------------------------------------------------------------------

    def match_call(self, event: CallEvent, at_ms: int) -> Verdict:
        region = event.region.upper() if event.region else self.default_region
        matches: list[Match] = []
        unparsed: list[str] = []
        for field, value, rule in (
            ("callee", event.callee, Rule.CALLEE_SCAM_NUMBER),
            ("caller", event.caller, Rule.CALLER_SCAM_NUMBER),
        ):
            try:
                number = normalize_phone(value, region)
            except NormalizationError:
                unparsed.append(field)
                continue
            for ind in self.number_hits(number, at_ms):
                matches.append(Match(rule, field, value, number, ind))
        return Verdict(_unique(matches), tuple(unparsed))

    def number_hits(self, number: str, at_ms: int) -> list[Indicator]:
        """The phone equal to ``number`` and the longest prefix it starts with, unless the
        number is allowlisted."""
        for entry in self.allowlist:
            if not entry.is_active(at_ms):
                continue
            if entry.type == IndicatorType.PHONE and entry.value == number:
                return []
            if entry.type == IndicatorType.PHONE_PREFIX and number.startswith(entry.value):
                return []
        hits: list[Indicator] = []
        longest: Indicator | None = None
        for ind in self.indicators:
            if not ind.is_active(at_ms):
                continue
            if ind.type == IndicatorType.PHONE and ind.value == number:
                hits.append(ind)
            if (
                ind.type == IndicatorType.PHONE_PREFIX
                and number.startswith(ind.value)
                and (longest is None or len(ind.value) > len(longest.value))
            ):
                longest = ind
        if longest is not None:
            hits.append(longest)
        return hits

    # -- web -----------------------------------------------------------------------------

    def match_web(self, event: WebEvent, at_ms: int) -> Verdict:
        matches: list[Match] = []
        unparsed: list[str] = []
        if event.host:
            try:
                host = normalize_domain(event.host)
            except NormalizationError:
                unparsed.append("host")
            else:
                if not self.host_allowlisted(host, at_ms):
                    for ind in self.domain_hits(host, at_ms):
                        matches.append(Match(Rule.HOST_SCAM_DOMAIN, "host", event.host, host, ind))
                    texts = [fold_confusables(host), fold_confusables(host_to_unicode(host))]
                    for text, ind in self.keyword_hits(texts, at_ms):
                        matches.append(
                            Match(Rule.KEYWORD_IMPERSONATION, "host", event.host, text, ind)
                        )
        for field, value in (("url", event.url), ("referrer", event.referrer)):
            if value and not self.match_url_field(field, value, at_ms, matches):
                unparsed.append(field)
        return Verdict(_unique(matches), tuple(unparsed))

    def match_url_field(self, field: str, value: str, at_ms: int, matches: list[Match]) -> bool:
        try:
            url = normalize_url(value)
        except NormalizationError:
            return False
        host = host_of(url)
        if self.host_allowlisted(host, at_ms):
            return True
        for entry in self.allowlist:
            if (
                entry.type == IndicatorType.URL
                and entry.is_active(at_ms)
                and url_under(url, entry.value)
            ):
                return True
        rule = Rule.HOST_SCAM_DOMAIN if field == "url" else Rule.REFERRER_SCAM_DOMAIN
        for ind in self.domain_hits(host, at_ms):
            matches.append(Match(rule, field, value, host, ind))
        for ind in self.indicators:
            if ind.type == IndicatorType.URL and ind.is_active(at_ms) and url_under(url, ind.value):
                matches.append(Match(Rule.URL_SCAM_URL, field, value, url, ind))
        for run, number in numbers_by_hand(value, self.default_region):
            for ind in self.number_hits(number, at_ms):
                matches.append(Match(Rule.URL_SCAM_NUMBER, field, run, number, ind))
        if field == "url":
            unicode_url = host_to_unicode(host) + url[len(host) :]
            texts = [fold_confusables(url), fold_confusables(unicode_url)]
            for text, ind in self.keyword_hits(texts, at_ms):
                matches.append(Match(Rule.KEYWORD_IMPERSONATION, field, value, text, ind))
        return True

    def domain_hits(self, host: str, at_ms: int) -> list[Indicator]:
        return [
            ind
            for ind in self.indicators
            if ind.type == IndicatorType.DOMAIN
            and ind.is_active(at_ms)
            and domain_under(host, ind.value)
        ]

    def host_allowlisted(self, host: str, at_ms: int) -> bool:
        return any(
            e.type == IndicatorType.DOMAIN and e.is_active(at_ms) and domain_under(host, e.value)
            for e in self.allowlist
        )

    def keyword_hits(self, texts: list[str], at_ms: int) -> list[tuple[str, Indicator]]:
        allowed = {
            e.value
            for e in self.allowlist
            if e.type == IndicatorType.KEYWORD and e.is_active(at_ms)
        }
        hits: list[tuple[str, Indicator]] = []
        for ind in self.indicators:
            if ind.type != IndicatorType.KEYWORD or not ind.is_active(at_ms):
                continue
            if ind.value in allowed:
                continue
            for text in texts:
                if ind.value in text:
                    hits.append((text, ind))
                    break
        return hits


def domain_under(host: str, domain: str) -> bool:
    """``host`` is ``domain`` or a subdomain of it (label boundaries only)."""
    return host == domain or host.endswith("." + domain)


def url_under(url: str, prefix: str) -> bool:
    """``url`` starts with ``prefix``; a prefix that is only a host[:port] must end where the
    URL's host[:port] ends (at ``/``, ``?``, ``:`` or the end)."""
    if not url.startswith(prefix):
        return False
    if "/" in prefix or "?" in prefix:
        return True
    return len(url) == len(prefix) or url[len(prefix)] in "/?:"


def host_of(url: str) -> str:
    """The host of a normalized URL: up to the first ``/`` or ``?``, without its port."""
    hostport = url
    for i, ch in enumerate(url):
        if ch in "/?":
            hostport = url[:i]
            break
    if hostport.startswith("["):
        return hostport[: hostport.index("]") + 1]
    return hostport.split(":")[0]


def numbers_by_hand(text: str, region: str) -> list[tuple[str, str]]:
    """Phone numbers in a URL, read character by character: ``(observed text, E.164)``.

    A run is a maximal stretch of digits and ``+-.() ``; its pieces are its digit groups.
    A run of 7..15 digits that reads as a number is that number. Otherwise every group of
    consecutive pieces (a part) holding 7..15 digits is read, ``+`` kept when written just
    before its first piece; a part that reads is kept unless a larger part that reads holds
    it. At most 64 parts are read per text (``matcher.MAX_PART_READS``), and at most 256
    distinct whole runs (``matcher.MAX_RUN_READS``): a new run past those is not read at all."""
    decoded = unquote(text)
    found: list[tuple[str, str]] = []
    budget = [64]  # reads of parts left, shared by every run of the text
    whole_runs: set[str] = set()  # the distinct whole runs read (at most 256)
    run = ""
    for ch in decoded + "\n":  # a character outside every run closes the last one
        if ch in _DIGITS or ch in _SEPARATORS:
            run += ch
            continue
        if run:
            found += _numbers_in_run(run, region, budget, whole_runs)
        run = ""
    return found


def _numbers_in_run(
    run: str, region: str, budget: list[int], whole_runs: set[str]
) -> list[tuple[str, str]]:
    # split the run into pieces: (separators before the piece, its digits); then what
    # follows the last piece
    pieces: list[tuple[str, str]] = []
    separators = ""
    digits = ""
    for ch in run:
        if ch in _DIGITS:
            digits += ch
        else:
            if digits:
                pieces.append((separators, digits))
                separators = ""
                digits = ""
            separators += ch
    if digits:
        pieces.append((separators, digits))
        separators = ""
    after_last = separators

    all_digits = "".join(d for _, d in pieces)
    if len(all_digits) < 7:
        return []
    if len(all_digits) <= 15:
        plus = "+" if "+" in pieces[0][0] else ""
        if plus + all_digits not in whole_runs:
            if len(whole_runs) >= 256:
                return []
            whole_runs.add(plus + all_digits)
        try:
            return [(run.strip(" -."), normalize_phone(plus + all_digits, region))]
        except NormalizationError:
            pass  # the whole run is no number: read its parts

    # every part but the whole run: (first piece, last piece, observed, number)
    readings: list[tuple[int, int, str, str]] = []
    for i in range(len(pieces)):
        for j in range(i, len(pieces)):
            if i == 0 and j == len(pieces) - 1:
                continue
            part = pieces[i : j + 1]
            part_digits = "".join(d for _, d in part)
            if len(part_digits) < 7 or len(part_digits) > 15:
                continue
            if budget[0] == 0:
                break
            budget[0] -= 1
            plus = "+" if "+" in part[0][0] else ""
            try:
                number = normalize_phone(plus + part_digits, region)
            except NormalizationError:
                continue
            observed = "".join(s + d for s, d in part)
            if j == len(pieces) - 1:
                observed += after_last
            readings.append((i, j, observed.strip(" -."), number))

    kept: list[tuple[str, str]] = []
    for i, j, observed, number in readings:
        inside_another = False
        for i2, j2, _, _ in readings:
            if (i2, j2) != (i, j) and i2 <= i and j2 >= j:
                inside_another = True
        if not inside_another:
            kept.append((observed, number))
    return kept


def _unique(matches: list[Match]) -> tuple[Match, ...]:
    seen: set[tuple[Rule, str, IndicatorType, str]] = set()
    out: list[Match] = []
    for m in matches:
        key = (m.rule, m.field, m.indicator.type, m.indicator.value)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return tuple(out)
