"""The matcher: an index of the indicator set that turns an event into matches.

Equality questions are plain dict lookups (E.164 numbers, every label suffix of a host,
phone prefixes tried at each length that exists, URL paths at each length that exists for
that host); substring questions use a pyahocorasick automaton (keywords). Expiry is checked
at match time (``is_active(at_ms)``), so an indicator expires without a rebuild. Numbers in
URLs are read with the matcher's default region (web events carry none).

What each rule compares (the reference matcher in :mod:`engine.devtools.reference` states the
same rules with plain loops, and property tests hold the two to the same answers):

- ``callee_scam_number`` / ``caller_scam_number``: the number in E.164 equals a ``phone``
  indicator, and/or starts with a ``phone_prefix`` (the longest active one only).
- ``host_scam_domain`` (fields ``host`` and ``url``) / ``referrer_scam_domain``: the host,
  or one of its label suffixes, is a ``domain`` indicator.
- ``url_scam_url`` (fields ``url`` and ``referrer``): the normalized URL starts with a
  ``url`` indicator; an indicator without path or query (``evil.com``, ``evil.com:8080``)
  must end where the URL's host[:port] does (so ``evil.com`` is not a prefix of
  ``evil.com.example.org``, but is one of ``evil.com:8080/x``).
- ``url_scam_number`` (fields ``url`` and ``referrer``): a phone number written in the
  percent-decoded URL, also with more digits glued on by a separator
  (``/call-1-800-555-0199-24-7``; see :func:`numbers_in_text`), looked up as for calls.
- ``keyword_impersonation`` (fields ``host`` and ``url``): a ``keyword`` indicator occurs in
  the confusable-folded host/URL, or in the folded Unicode form of a punycode host.

Allowlist: a number equal to an allowlisted ``phone`` or under an allowlisted
``phone_prefix``, a host under an allowlisted ``domain``, a URL under an allowlisted
``url``/``domain`` never produces a match in that field; an allowlisted ``keyword`` never
matches. Allowlist entries past their validity window no longer apply.

Live updates: a matcher is built once from a snapshot (:meth:`Matcher.build`, seconds for
1M) and then follows the store's change log in place (:meth:`Matcher.prepare` then
:meth:`Matcher.apply`), at a cost proportional to the change, not to the indicator set. This
replaces the former "immutable, swapped whole" invariant with: the matcher is changed only
by :meth:`Matcher.apply`, on the thread that matches (the worker's event loop), between two
events, so every event is still matched wholly before or wholly after a change set. The
keyword automaton is the one index that is not edited: when keywords are added or removed,
:meth:`Matcher.prepare` builds a new one (off the event loop) and :meth:`Matcher.apply`
swaps the reference. The per-host caches are emptied when what they hold changes (any
``domain`` change empties the domain cache, a new automaton the host keyword cache).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar
from urllib.parse import unquote

import ahocorasick

from engine.core.events import CallEvent, WebEvent
from engine.core.models import (
    ChangeSet,
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Match,
    Rule,
    Verdict,
    now_ms,
)
from engine.core.normalize import (
    fold_confusables,
    host_to_unicode,
    normalize_domain,
    normalize_phone,
    normalize_phone_or_none,
    split_url,
)
from engine.errors import NormalizationError

# a phone number written in a URL: digits with the separators people and sites put between
# them (a run, maximal), read in the default region. A run of 7..15 digits is read as a
# whole first; when the whole run is no number (more digits glued on: "-24-7", "-2024.html"),
# its parts are read: contiguous groups of its pieces (the digit groups between separators)
# holding 7..15 digits. See numbers_in_text.
MIN_NUMBER_DIGITS = 7
MAX_NUMBER_DIGITS = 15  # E.164 allows at most 15
# reads of parts per URL: a hostile run of one-digit pieces would cost ~9 reads per digit
MAX_PART_READS = 64
# distinct whole runs read per URL: a hostile URL of thousands of 7-digit runs would cost one
# number read (~10 µs) each; a run written again is remembered, not read again
MAX_RUN_READS = 256
_NUMBER_RUN = re.compile(r"[0-9+\-.() ]+")  # maximal runs; linear even on hostile input
_DIGIT_PIECE = re.compile(r"[0-9]+")
_SEVEN_DIGITS = re.compile(r"[0-9](?:[+\-.() ]*[0-9]){6}")
_DROP_SEPARATORS = str.maketrans("", "", "+-.() ")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

_EMPTY = Verdict()
_V = TypeVar("_V")
_K = TypeVar("_K")


def numbers_in_text(text: str, region: str) -> list[tuple[str, str]]:
    """Phone numbers written in a URL, read in ``region``: ``(observed text, E.164)``.

    ``text`` is percent-decoded first (``%2B1800…`` is ``+1800…``). A *run* is a maximal
    stretch of digits and ``+-.() `` separators; its *pieces* are its digit groups. A run of
    7..15 digits that reads as a number (:func:`normalize_phone`, a ``+`` kept when written
    before its first digit) is one number, and its parts are not read (``+44 20 7946 0000``
    holds no US number ``20 7946 0000``). Otherwise (it does not read, or has more than 15
    digits) each *part* is read: pieces ``i..j`` holding 7..15 digits, with ``+`` when one is
    written between piece ``i-1`` and piece ``i``; a part that reads is kept unless it lies
    within a larger part that reads (``1-800-555-0199`` in ``1-800-555-0199-24-7``, not also
    ``800-555-0199``). Overlapping parts are both kept: a written number is never missed for
    a neighbour. Digits written together are one piece, never split
    (``/order-2024112812345678`` holds no number). At most :data:`MAX_PART_READS` parts are
    read per ``text`` (in order: run, first piece, last piece), and at most
    :data:`MAX_RUN_READS` distinct whole runs (a run written again reuses its reading; a new
    run past that budget is not read, nor are its parts).
    """
    # unquote() is slow on a '%' that starts no escape (thousands of them: milliseconds)
    decoded = unquote(text) if "%" in text and _PERCENT_ESCAPE.search(text) else text
    if _SEVEN_DIGITS.search(decoded) is None:  # most URLs: no run long enough
        return []
    found: list[tuple[str, str]] = []
    budget = MAX_PART_READS
    runs_read: dict[str, str | None] = {}  # plus + digits -> its number, None: no number
    for run_match in _NUMBER_RUN.finditer(decoded):
        run = run_match.group()
        digits = run.translate(_DROP_SEPARATORS)  # the run holds nothing else
        if len(digits) < MIN_NUMBER_DIGITS:
            continue
        if len(digits) <= MAX_NUMBER_DIGITS:
            plus = "+" if "+" in run[: run.find(digits[0])] else ""
            written = plus + digits
            if written in runs_read:
                number = runs_read[written]
            elif len(runs_read) >= MAX_RUN_READS:
                continue  # the budget of whole runs is spent: neither it nor its parts
            else:
                try:
                    number = normalize_phone(written, region)
                except NormalizationError:
                    number = None
                runs_read[written] = number
            if number is not None:
                found.append((run.strip(" -."), number))
                continue
        if budget > 0 and digits not in run:  # no number, and more than one piece: its parts
            budget = _numbers_in_parts(run, region, budget, found)
    return found


def _numbers_in_parts(run: str, region: str, budget: int, found: list[tuple[str, str]]) -> int:
    """Append the maximal parts of ``run`` that read as numbers; return the budget left.

    The pieces are found as the parts are read (a window of the next 16: a part of at most
    15 digits spans at most 15 pieces, and one more tells whether the run ends there), so a
    hostile megabyte run costs no more than the budget of reads."""
    spans = (m.span() for m in _DIGIT_PIECE.finditer(run))
    window: deque[tuple[int, int]] = deque(islice(spans, MAX_NUMBER_DIGITS + 1))
    if len(window) < 2:
        return budget  # one piece: no part but the whole run
    # (first piece, last piece, observed, number) of each part that reads, in that order
    readings: list[tuple[int, int, str, str]] = []
    lead_start = 0  # the separators before a piece belong to the parts it starts
    i = 0
    while window and budget > 0:
        ends_run = len(window) <= MAX_NUMBER_DIGITS  # the window holds the run's last piece
        plus = "+" if "+" in run[lead_start : window[0][0]] else ""
        digits = ""
        for k, (start, end) in enumerate(window):
            digits += run[start:end]
            if len(digits) > MAX_NUMBER_DIGITS:
                break
            is_last = ends_run and k == len(window) - 1
            if len(digits) < MIN_NUMBER_DIGITS or (i == 0 and is_last):
                continue  # too short, or the whole run (already read)
            if budget == 0:
                break
            budget -= 1
            try:
                number = normalize_phone(plus + digits, region)
            except NormalizationError:
                continue
            observed = run[lead_start : len(run) if is_last else end].strip(" -.")
            readings.append((i, i + k, observed, number))
        lead_start = window.popleft()[1]
        window.extend(islice(spans, 1))
        i += 1
    # keep the maximal parts: per first piece the one reaching furthest, and only if no part
    # starting earlier reaches as far
    furthest: dict[int, tuple[int, int, str, str]] = {}
    for reading in readings:
        furthest[reading[0]] = reading  # in order of last piece: the furthest comes last
    reach = -1
    for _, j, observed, number in furthest.values():  # in order of first piece
        if j > reach:
            found.append((observed, number))
            reach = j
    return budget


def strip_port(hostport: str) -> str:
    """``host:port`` → ``host`` (IPv6 literals in brackets keep their colons)."""
    if hostport.startswith("["):
        return hostport[: hostport.find("]") + 1] if "]" in hostport else hostport
    return hostport.partition(":")[0]


class _Collector:
    """Matches of one event, one per (rule, field, indicator)."""

    __slots__ = ("matches", "seen")

    def __init__(self) -> None:
        self.matches: list[Match] = []
        self.seen: set[tuple[Rule, str, IndicatorType, str]] = set()

    def add(self, rule: Rule, field: str, observed: str, normalized: str, ind: Indicator) -> None:
        key = (rule, field, ind.type, ind.value)
        if key not in self.seen:
            self.seen.add(key)
            self.matches.append(Match(rule, field, observed, normalized, ind))


# the keyword table and its automaton, as a change set leaves them (see Matcher.prepare)
KeywordIndex = tuple[dict[str, Indicator], ahocorasick.Automaton]


@dataclass(frozen=True, slots=True)
class PreparedChanges:
    """A change set made ready for :meth:`Matcher.apply` by :meth:`Matcher.prepare`."""

    changes: ChangeSet
    keywords: KeywordIndex | None  # None: no keyword is added or removed, the automaton stays


class Matcher:
    """The index of an indicator set: built from a snapshot off the hot path, then changed
    only by :meth:`apply` between events (see the module docstring)."""

    __slots__ = (
        "_allow_domains",
        "_allow_keywords",
        "_allow_phones",
        "_allow_prefix_length_counts",
        "_allow_prefix_lengths",
        "_allow_prefixes",
        "_allow_url_lengths",
        "_allow_urls",
        "_default_region",
        "_domain_cache",
        "_domains",
        "_frozen",
        "_host_keyword_cache",
        "_keyword_automaton",
        "_keywords",
        "_phones",
        "_prefix_heads",
        "_prefix_length_counts",
        "_prefix_lengths",
        "_prefixes",
        "_url_lengths",
        "_urls",
        "version",
    )

    version: int

    def __init__(self, snapshot: IndicatorSnapshot, default_region: str) -> None:
        self.version = snapshot.version
        self._default_region = default_region.upper()
        by_type = _by_type(snapshot.indicators)
        allow = _by_type(snapshot.allowlist)

        self._phones = by_type[IndicatorType.PHONE]
        self._prefixes = by_type[IndicatorType.PHONE_PREFIX]
        self._prefix_length_counts = _length_counts(self._prefixes)
        self._prefix_lengths = _lengths(self._prefixes)
        self._prefix_heads = _heads(self._prefixes)
        self._domains = by_type[IndicatorType.DOMAIN]
        self._urls, self._url_lengths = _url_index(by_type[IndicatorType.URL])
        self._keywords = by_type[IndicatorType.KEYWORD]
        self._keyword_automaton = _automaton(self._keywords)

        self._allow_phones = allow[IndicatorType.PHONE]
        self._allow_prefixes = allow[IndicatorType.PHONE_PREFIX]
        self._allow_prefix_length_counts = _length_counts(self._allow_prefixes)
        self._allow_prefix_lengths = _lengths(self._allow_prefixes)
        self._allow_domains = allow[IndicatorType.DOMAIN]
        self._allow_urls, self._allow_url_lengths = _url_index(allow[IndicatorType.URL])
        self._allow_keywords = allow[IndicatorType.KEYWORD]
        # host → what the index holds for it, active or not (activity is checked per event):
        # traffic repeats its hosts, and a label-suffix walk over a big table costs ~1 µs
        self._domain_cache: dict[str, tuple[Indicator, ...]] = {}
        self._host_keyword_cache: dict[str, tuple[tuple[str, str], ...]] = {}
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        # once built, only apply() changes a matcher (through object.__setattr__)
        if getattr(self, "_frozen", False):
            raise AttributeError(f"a built Matcher is immutable but for apply() ({name!r})")
        object.__setattr__(self, name, value)

    @classmethod
    def build(cls, snapshot: IndicatorSnapshot, *, default_region: str = "US") -> Matcher:
        """Index a snapshot (values are already normalized by the store). Seconds for 1M."""
        return cls(snapshot, default_region)

    def counts(self, at_ms: int | None = None) -> dict[IndicatorType, int]:
        """Indicators held that are active now (or at ``at_ms``), by type, for the
        ``scamwatch_indicators`` gauge."""
        at = now_ms() if at_ms is None else at_ms
        held: dict[IndicatorType, Iterable[Indicator]] = {
            IndicatorType.PHONE: self._phones.values(),
            IndicatorType.PHONE_PREFIX: self._prefixes.values(),
            IndicatorType.DOMAIN: self._domains.values(),
            IndicatorType.URL: (i for tails in self._urls.values() for i, _ in tails.values()),
            IndicatorType.KEYWORD: self._keywords.values(),
        }
        return {t: sum(1 for i in inds if i.is_active(at)) for t, inds in held.items()}

    # -- live updates ----------------------------------------------------------------------

    def prepare(self, changes: ChangeSet) -> PreparedChanges:
        """Make ``changes`` ready for :meth:`apply`. When they add or remove a keyword
        indicator this builds the new keyword automaton (seconds for a huge keyword list):
        call it off the event loop. It only reads the matcher, which may go on matching."""
        keywords: dict[str, Indicator] | None = None
        for change in changes.changes:
            ind = change.indicator
            if change.allowlist or ind.type is not IndicatorType.KEYWORD:
                continue
            if keywords is None:
                keywords = dict(self._keywords)
            if change.op == "remove":
                keywords.pop(ind.value, None)
            else:
                keywords[ind.value] = ind
        if keywords is None or keywords.keys() == self._keywords.keys():
            return PreparedChanges(changes, None)  # the automaton finds the same words
        return PreparedChanges(changes, (keywords, _automaton(keywords)))

    def apply(
        self, prepared: PreparedChanges, at_ms: int | None = None
    ) -> dict[IndicatorType, int]:
        """Apply a prepared change set to this matcher's indexes in place, in the change
        log's order (an upsert replaces the entry of its (type, value), a remove drops it):
        afterwards the matcher answers as one built from the snapshot the changes lead to.
        Costs what changed, not what is held (a new shortest phone prefix re-cuts the prefix
        heads: the one step that walks a whole table, and it is rare). Call it on the thread
        that matches, between events; ``prepared`` must come from :meth:`prepare` of this
        matcher as it is now. Returns, by type, how many more indicators are active now (or
        at ``at_ms``) than before, for the ``scamwatch_indicators`` gauge."""
        changes = prepared.changes
        if changes.from_version != self.version:
            raise ValueError(
                f"changes from version {changes.from_version} do not follow the matcher's "
                f"version {self.version}"
            )
        at = now_ms() if at_ms is None else at_ms
        before: dict[tuple[IndicatorType, str], Indicator | None] = {}
        domains_changed = False
        for change in changes.changes:
            ind = change.indicator
            upsert = None if change.op == "remove" else ind
            if not change.allowlist:
                if ind.key not in before:
                    before[ind.key] = self._held(ind.type, ind.value)
                domains_changed = domains_changed or ind.type is IndicatorType.DOMAIN
            if ind.type is IndicatorType.KEYWORD and not change.allowlist:
                if prepared.keywords is None:  # no word added or removed: entries replaced
                    _table_put(self._keywords, ind.value, upsert)
            else:
                self._apply_one(change.allowlist, ind, upsert)
        set_ = object.__setattr__
        if prepared.keywords is not None:
            table, automaton = prepared.keywords
            set_(self, "_keywords", table)
            set_(self, "_keyword_automaton", automaton)  # one reference: old or new words
            set_(self, "_host_keyword_cache", {})
        if domains_changed:
            set_(self, "_domain_cache", {})
        set_(self, "version", changes.to_version)
        deltas = dict.fromkeys(IndicatorType, 0)
        for (type_, value), old in before.items():
            new = self._held(type_, value)
            deltas[type_] += _active(new, at) - _active(old, at)
        return deltas

    def update(self, changes: ChangeSet, at_ms: int | None = None) -> dict[IndicatorType, int]:
        """:meth:`prepare` and :meth:`apply` on the calling thread (tests, scripts)."""
        return self.apply(self.prepare(changes), at_ms)

    def _held(self, type_: IndicatorType, value: str) -> Indicator | None:
        """The indicator (not the allowlist entry) held for (type, value), active or not."""
        if type_ is IndicatorType.URL:
            host, tail, _ = _url_key(value)
            entry = self._urls.get(host, {}).get(tail)
            return None if entry is None else entry[0]
        table = {
            IndicatorType.PHONE: self._phones,
            IndicatorType.PHONE_PREFIX: self._prefixes,
            IndicatorType.DOMAIN: self._domains,
            IndicatorType.KEYWORD: self._keywords,
        }[type_]
        return table.get(value)

    def _apply_one(self, allowlist: bool, ind: Indicator, upsert: Indicator | None) -> None:
        """One change to one table (a keyword indicator is handled by apply)."""
        set_ = object.__setattr__
        value = ind.value
        if ind.type is IndicatorType.PHONE:
            _table_put(self._allow_phones if allowlist else self._phones, value, upsert)
        elif ind.type is IndicatorType.DOMAIN:
            _table_put(self._allow_domains if allowlist else self._domains, value, upsert)
        elif ind.type is IndicatorType.KEYWORD:  # the allowlist: checked per event
            _table_put(self._allow_keywords, value, upsert)
        elif ind.type is IndicatorType.URL:
            index, lengths = (
                (self._allow_urls, self._allow_url_lengths)
                if allowlist
                else (self._urls, self._url_lengths)
            )
            _url_put(index, lengths, value, upsert)
        elif allowlist:  # phone_prefix
            counts = self._allow_prefix_length_counts
            if _prefix_put(self._allow_prefixes, counts, value, upsert):
                set_(self, "_allow_prefix_lengths", tuple(sorted(counts, reverse=True)))
        else:
            counts = self._prefix_length_counts
            added = _table_put(self._prefixes, value, upsert)
            if added == 0:
                return
            if _count_length(counts, len(value), added):
                set_(self, "_prefix_lengths", tuple(sorted(counts, reverse=True)))
            shortest, heads = self._prefix_heads
            if not self._prefixes or len(value) < shortest or shortest not in counts:
                # the first key, a new shortest length, or the last key of the shortest one
                set_(self, "_prefix_heads", _heads(self._prefixes))
            else:
                _count_key(heads, value[:shortest], added)

    # -- calls ---------------------------------------------------------------------------

    def match_call(self, event: CallEvent, at_ms: int) -> Verdict:
        region = event.region.upper() if event.region else self._default_region
        matches: list[Match] | None = None
        unparsed: list[str] | None = None
        # callee first: a subscriber dialling a scam number is the classic call-back scam
        number = normalize_phone_or_none(event.callee, region)
        if number is None:
            unparsed = ["callee"]
        else:
            hits = self._number_hits(number, at_ms)
            if hits:
                matches = [
                    Match(Rule.CALLEE_SCAM_NUMBER, "callee", event.callee, number, ind)
                    for ind in hits
                ]
        number = normalize_phone_or_none(event.caller, region)
        if number is None:
            unparsed = [*(unparsed or ()), "caller"]
        else:
            hits = self._number_hits(number, at_ms)
            if hits:
                matches = [
                    *(matches or ()),
                    *(
                        Match(Rule.CALLER_SCAM_NUMBER, "caller", event.caller, number, ind)
                        for ind in hits
                    ),
                ]
        if matches is None and unparsed is None:
            return _EMPTY
        return Verdict(tuple(matches or ()), tuple(unparsed or ()))

    def _number_hits(self, number: str, at_ms: int) -> Sequence[Indicator]:
        """The exact ``phone`` and the longest ``phone_prefix`` active for ``number``, unless
        the number is allowlisted."""
        hits: list[Indicator] | None = None
        ind = self._phones.get(number)
        if ind is not None and ind.is_active(at_ms):
            hits = [ind]
        shortest, heads = self._prefix_heads
        if number[:shortest] in heads:  # most numbers are under no listed block
            ind = _prefix_lookup(self._prefixes, self._prefix_lengths, number, at_ms)
            if ind is not None:
                hits = [*(hits or ()), ind]
        if hits is None or self._number_allowlisted(number, at_ms):
            return ()
        return hits

    def number_allowlisted(self, number: str, at_ms: int) -> bool:
        """Whether ``number`` (E.164) is allowlisted at ``at_ms`` (sightings skip it)."""
        return self._number_allowlisted(number, at_ms)

    @property
    def default_region(self) -> str:
        """The region numbers in URLs are read in."""
        return self._default_region

    def _number_allowlisted(self, number: str, at_ms: int) -> bool:
        ind = self._allow_phones.get(number)
        if ind is not None and ind.is_active(at_ms):
            return True
        allow = self._allow_prefixes
        return _prefix_lookup(allow, self._allow_prefix_lengths, number, at_ms) is not None

    # -- web -----------------------------------------------------------------------------

    def match_web(self, event: WebEvent, at_ms: int) -> Verdict:
        out = _Collector()
        unparsed: list[str] = []
        if event.host:
            try:
                host = normalize_domain(event.host)
            except NormalizationError:
                unparsed.append("host")
            else:
                self._match_host_field(event.host, host, at_ms, out)
        if event.url and not self._match_url_field("url", event.url, at_ms, out):
            unparsed.append("url")
        if event.referrer and not self._match_url_field("referrer", event.referrer, at_ms, out):
            unparsed.append("referrer")
        if not out.matches and not unparsed:
            return _EMPTY
        return Verdict(tuple(out.matches), tuple(unparsed))

    def _match_host_field(self, observed: str, host: str, at_ms: int, out: _Collector) -> None:
        domains = self._domain_hits(host, at_ms)
        keywords = self._host_keyword_hits(host, at_ms) if self._keywords else ()
        # the allowlist is consulted only for a would-be alert (most events have none)
        if (not domains and not keywords) or self._host_allowlisted(host, at_ms):
            return
        for ind in domains:
            out.add(Rule.HOST_SCAM_DOMAIN, "host", observed, host, ind)
        for text, ind in keywords:
            out.add(Rule.KEYWORD_IMPERSONATION, "host", observed, text, ind)

    def _match_url_field(self, field: str, observed: str, at_ms: int, out: _Collector) -> bool:
        """Every rule on a URL-valued field; False when the value is not a URL."""
        try:
            hostport, rest = split_url(observed)
        except NormalizationError:
            return False
        host = strip_port(hostport)
        url = hostport + rest
        tail = url[len(host) :]  # ":port/path?query" as the URL index stores it
        domains = self._domain_hits(host, at_ms)
        urls = _url_hits(self._urls, self._url_lengths, host, tail, at_ms) if self._urls else ()
        numbers: list[tuple[str, str, Indicator]] = []
        if self._phones or self._prefixes:
            looked_up: set[str] = set()  # a number written 10,000 times is looked up once
            for run, number in numbers_in_text(observed, self._default_region):
                if number not in looked_up:
                    looked_up.add(number)
                    numbers.extend((run, number, ind) for ind in self._number_hits(number, at_ms))
        keywords: Sequence[tuple[str, Indicator]] = ()
        if field == "url" and self._keywords:
            keywords = self._keyword_hits(_url_texts(url, host), at_ms)
        if not (domains or urls or numbers or keywords):
            return True
        if self._host_allowlisted(host, at_ms) or (
            self._allow_urls
            and _url_hits(self._allow_urls, self._allow_url_lengths, host, tail, at_ms)
        ):
            return True
        domain_rule = Rule.HOST_SCAM_DOMAIN if field == "url" else Rule.REFERRER_SCAM_DOMAIN
        for ind in domains:
            out.add(domain_rule, field, observed, host, ind)
        for ind in urls:
            out.add(Rule.URL_SCAM_URL, field, observed, url, ind)
        for run, number, ind in numbers:
            out.add(Rule.URL_SCAM_NUMBER, field, run, number, ind)
        for text, ind in keywords:
            out.add(Rule.KEYWORD_IMPERSONATION, field, observed, text, ind)
        return True

    def _domain_hits(self, host: str, at_ms: int) -> list[Indicator]:
        """The active ``domain`` indicators for ``host`` and its label suffixes, longest
        first (as :func:`_suffix_lookup`, through the per-host cache)."""
        held = self._domain_cache.get(host)
        if held is None:
            held = _suffix_entries(self._domains, host)
            _remember(self._domain_cache, host, held)
        if not held:
            return []
        return [ind for ind in held if ind.is_active(at_ms)]

    def _host_keyword_hits(self, host: str, at_ms: int) -> list[tuple[str, Indicator]]:
        """:meth:`_keyword_hits` of the host's texts, the search done once per host."""
        found = self._host_keyword_cache.get(host)
        if found is None:
            found = tuple(self._keywords_found(_host_texts(host)))
            _remember(self._host_keyword_cache, host, found)
        if not found:
            return []
        return self._active_keywords(found, at_ms)

    def _host_allowlisted(self, host: str, at_ms: int) -> bool:
        allow = self._allow_domains
        return bool(allow) and bool(_suffix_lookup(allow, host, at_ms, first=True))

    def _keyword_hits(self, texts: Sequence[str], at_ms: int) -> list[tuple[str, Indicator]]:
        """(text, keyword) for each active, not allowlisted keyword found in one of
        ``texts`` (the first text it is found in)."""
        found = self._keywords_found(texts)
        return self._active_keywords(found, at_ms) if found else []

    def _keywords_found(self, texts: Sequence[str]) -> list[tuple[str, str]]:
        """(text, keyword) for each keyword in one of ``texts`` (the first it is in), active
        or not."""
        found: list[tuple[str, str]] = []
        seen: set[str] = set()
        for text in texts:
            for _, kw in self._keyword_automaton.iter(text):
                if kw not in seen:
                    seen.add(kw)
                    found.append((text, kw))
        return found

    def _active_keywords(
        self, found: Sequence[tuple[str, str]], at_ms: int
    ) -> list[tuple[str, Indicator]]:
        hits: list[tuple[str, Indicator]] = []
        for text, kw in found:
            ind = self._keywords[kw]
            if not ind.is_active(at_ms):
                continue
            allowed = self._allow_keywords.get(kw)
            if allowed is None or not allowed.is_active(at_ms):
                hits.append((text, ind))
        return hits


def _by_type(entries: Iterable[Indicator]) -> dict[IndicatorType, dict[str, Indicator]]:
    """One dict per type, value → indicator (repeated keys are merged, never lost)."""
    tables: dict[IndicatorType, dict[str, Indicator]] = {t: {} for t in IndicatorType}
    for ind in entries:
        table = tables[ind.type]
        old = table.get(ind.value)
        table[ind.value] = ind if old is None else old.merge(ind)
    return tables


def _length_counts(table: Mapping[str, object]) -> dict[int, int]:
    """Key length → how many keys have it (what a live update keeps :func:`_lengths` by)."""
    counts: dict[int, int] = {}
    for key in table:
        counts[len(key)] = counts.get(len(key), 0) + 1
    return counts


def _lengths(table: Mapping[str, object]) -> tuple[int, ...]:
    """Distinct key lengths, longest first (a prefix lookup tries only these)."""
    return tuple(sorted({len(k) for k in table}, reverse=True))


def _heads(table: Mapping[str, object]) -> tuple[int, dict[str, int]]:
    """The shortest key length and the keys cut to it: a number whose start is not among
    them starts with no key (one lookup instead of one dict lookup per length). Each head
    counts the keys it cuts, so a live update can add and drop keys one at a time."""
    if not table:
        return 0, {}
    shortest = min(len(k) for k in table)
    heads: dict[str, int] = {}
    for key in table:
        heads[key[:shortest]] = heads.get(key[:shortest], 0) + 1
    return shortest, heads


def _suffix_lookup(
    table: Mapping[str, Indicator], host: str, at_ms: int, *, first: bool = False
) -> list[Indicator]:
    """The active entries of ``table`` for ``host`` and each of its label suffixes
    (``a.b.c``, ``b.c``, ``c``: label boundaries only), longest first; with ``first``, only
    the first one found. Serves both the indicator and the allowlist lookups."""
    hits: list[Indicator] = []
    start = 0
    while True:
        ind = table.get(host[start:] if start else host)
        if ind is not None and ind.is_active(at_ms):
            hits.append(ind)
            if first:
                return hits
        dot = host.find(".", start)
        if dot < 0:
            return hits
        start = dot + 1


def _suffix_entries(table: Mapping[str, Indicator], host: str) -> tuple[Indicator, ...]:
    """The entries of ``table`` for ``host`` and each of its label suffixes, longest first,
    active or not (what :func:`_suffix_lookup` filters by activity)."""
    held: list[Indicator] = []
    start = 0
    while True:
        ind = table.get(host[start:] if start else host)
        if ind is not None:
            held.append(ind)
        dot = host.find(".", start)
        if dot < 0:
            return tuple(held)
        start = dot + 1


# hosts remembered per matcher (each cache is emptied when full: no LRU bookkeeping per event)
HOST_CACHE_SIZE = 65_536


def _remember(cache: dict[str, _V], key: str, value: _V) -> None:
    if len(cache) >= HOST_CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _prefix_lookup(
    table: Mapping[str, Indicator], lengths: Sequence[int], number: str, at_ms: int
) -> Indicator | None:
    """The longest active entry of ``table`` that ``number`` starts with (``lengths``: the
    table's key lengths, longest first, from :func:`_lengths`), or ``None``. Serves both the
    indicator and the allowlist lookups."""
    size = len(number)
    for length in lengths:
        if length <= size:
            ind = table.get(number[:length])
            if ind is not None and ind.is_active(at_ms):
                return ind
    return None


# a URL index entry: the indicator, and whether it must end at the URL's host[:port] (it has
# no path or query, so "evil.com" must not be taken as a prefix of "evil.com.example.org/")
_UrlEntry = tuple[Indicator, bool]
_HOST_END = frozenset("/?:")


def _url_index(
    urls: dict[str, Indicator],
) -> tuple[dict[str, dict[str, _UrlEntry]], dict[str, tuple[int, ...]]]:
    """host → {":port/path?query" after the host → entry}, and the tail lengths per host."""
    index: dict[str, dict[str, _UrlEntry]] = {}
    for value, ind in urls.items():
        host, tail, bounded = _url_key(value)
        index.setdefault(host, {})[tail] = (ind, bounded)
    lengths = {
        h: tuple(sorted({len(t) for t in tails}, reverse=True)) for h, tails in index.items()
    }
    return index, lengths


def _url_key(value: str) -> tuple[str, str, bool]:
    """A ``url`` indicator's place in the URL index: host, the tail after it, bounded."""
    hostport, _, _ = value.partition("/")
    host = strip_port(hostport.partition("?")[0])
    tail = value[len(host) :]
    return host, tail, not ("/" in tail or "?" in tail)


def _table_put(table: dict[str, Indicator], value: str, upsert: Indicator | None) -> int:
    """Set (``upsert``) or drop (None) one entry: +1 a key added, -1 a key dropped, else 0."""
    if upsert is None:
        return -1 if table.pop(value, None) is not None else 0
    added = value not in table
    table[value] = upsert
    return 1 if added else 0


def _count_key(counts: dict[_K, int], key: _K, delta: int) -> bool:
    """Add ``delta`` to a count, dropping it at zero; True when the key appeared or went."""
    if delta == 0:
        return False
    count = counts.get(key, 0) + delta
    if count > 0:
        counts[key] = count
        return count == delta
    counts.pop(key, None)
    return True


def _count_length(counts: dict[int, int], length: int, delta: int) -> bool:
    return _count_key(counts, length, delta)


def _prefix_put(
    table: dict[str, Indicator], counts: dict[int, int], value: str, upsert: Indicator | None
) -> bool:
    """One allowlist phone prefix change; True when the set of key lengths changed."""
    return _count_length(counts, len(value), _table_put(table, value, upsert))


def _url_put(
    index: dict[str, dict[str, _UrlEntry]],
    lengths: dict[str, tuple[int, ...]],
    value: str,
    upsert: Indicator | None,
) -> None:
    """One change to a URL index; a host's tail lengths are recounted from its own tails
    (only when a length may have come or gone)."""
    host, tail, bounded = _url_key(value)
    tails = index.get(host)
    if upsert is None:
        if tails is None or tails.pop(tail, None) is None:
            return
        if not tails:
            del index[host], lengths[host]
            return
    else:
        if tails is None:
            tails = index[host] = {}
        added = tail not in tails
        tails[tail] = (upsert, bounded)
        if not added or len(tail) in lengths.get(host, ()):
            return
    lengths[host] = tuple(sorted({len(t) for t in tails}, reverse=True))


def _active(ind: Indicator | None, at_ms: int) -> int:
    return 1 if ind is not None and ind.is_active(at_ms) else 0


def _url_hits(
    index: dict[str, dict[str, _UrlEntry]],
    lengths: dict[str, tuple[int, ...]],
    host: str,
    tail: str,
    at_ms: int,
) -> list[Indicator]:
    """URL indicators that are prefixes of ``host + tail`` (a normalized URL)."""
    tails = index.get(host)
    if tails is None:
        return []
    hits: list[Indicator] = []
    size = len(tail)
    for length in lengths[host]:
        if length <= size:
            entry = tails.get(tail[:length])
            if entry is None:
                continue
            ind, bounded = entry
            if bounded and length < size and tail[length] not in _HOST_END:
                continue
            if ind.is_active(at_ms):
                hits.append(ind)
    return hits


def _automaton(keywords: dict[str, Indicator]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for kw in keywords:
        automaton.add_word(kw, kw)
    automaton.make_automaton()
    return automaton


def _host_texts(host: str) -> tuple[str, ...]:
    """A host as keyword search sees it: folded, and its Unicode form folded if punycode."""
    folded = fold_confusables(host)
    if "xn--" not in host:
        return (folded,)
    return (folded, fold_confusables(host_to_unicode(host)))


def _url_texts(url: str, host: str) -> tuple[str, ...]:
    """A normalized URL as keyword search sees it (also with its punycode host in Unicode)."""
    folded = fold_confusables(url)
    if "xn--" not in host:
        return (folded,)
    return (folded, fold_confusables(host_to_unicode(host) + url[len(host) :]))
