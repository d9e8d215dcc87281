"""Small frozen value types shared by every layer."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class IndicatorType(StrEnum):
    PHONE = "phone"
    PHONE_PREFIX = "phone_prefix"
    DOMAIN = "domain"
    URL = "url"
    KEYWORD = "keyword"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> Severity:
        """This severity raised to ``other`` if that is higher (never lowered)."""
        return self if self.rank >= other.rank else other


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class Rule(StrEnum):
    """Stable rule names of alert.v1."""

    CALLEE_SCAM_NUMBER = "callee_scam_number"
    CALLER_SCAM_NUMBER = "caller_scam_number"
    HOST_SCAM_DOMAIN = "host_scam_domain"
    REFERRER_SCAM_DOMAIN = "referrer_scam_domain"
    URL_SCAM_URL = "url_scam_url"
    URL_SCAM_NUMBER = "url_scam_number"
    KEYWORD_IMPERSONATION = "keyword_impersonation"


class StatefulRule(StrEnum):
    """Stable rule names of alert.v1 that no single event makes: they follow state kept
    across events (exposures, sightings), not the matcher."""

    VICTIM_JOURNEY = "victim_journey"
    DISCOVERED_SCAM_NUMBER = "discovered_scam_number"


class Stream(StrEnum):
    CALLS = "calls"
    WEB = "web"


DEFAULT_CONFIDENCE = 50  # "unknown" when a feed says nothing


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator (or allowlist entry). ``value`` is already normalized for its type.

    Identity is ``(type, value)``; the same indicator from several feeds is one entry whose
    ``sources`` remembers each of them (see :meth:`merge`). Times are epoch milliseconds.
    """

    type: IndicatorType
    value: str
    sources: tuple[str, ...] = ()
    severity: Severity = Severity.HIGH
    confidence: int = DEFAULT_CONFIDENCE
    tags: tuple[str, ...] = ()
    valid_from: int | None = None
    valid_until: int | None = None
    description: str = ""
    reference: str = ""

    @property
    def key(self) -> tuple[IndicatorType, str]:
        return (self.type, self.value)

    def is_active(self, at_ms: int) -> bool:
        """False once past ``valid_until`` (or before ``valid_from``)."""
        if self.valid_until is not None and at_ms > self.valid_until:
            return False
        return self.valid_from is None or at_ms >= self.valid_from

    def merge(self, other: Indicator) -> Indicator:
        """Combine two reports of the same indicator: sources and tags united, the highest
        severity and confidence, the widest validity window, the first non-empty texts."""
        if other.key != self.key:
            raise ValueError(f"cannot merge {self.key} with {other.key}")
        return replace(
            self,
            sources=_union(self.sources, other.sources),
            severity=self.severity.at_least(other.severity),
            confidence=max(self.confidence, other.confidence),
            tags=_union(self.tags, other.tags),
            valid_from=_min_or_none(self.valid_from, other.valid_from),
            valid_until=_max_or_none(self.valid_until, other.valid_until),
            description=self.description or other.description,
            reference=self.reference or other.reference,
        )


def _union(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))


def _min_or_none(a: int | None, b: int | None) -> int | None:
    # no lower bound on either side means no lower bound at all
    return None if a is None or b is None else min(a, b)


def _max_or_none(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class IndicatorSnapshot:
    """Everything a matcher is built from, as of one store version."""

    version: int
    indicators: tuple[Indicator, ...] = ()
    allowlist: tuple[Indicator, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator matched by one field of an event under one rule."""

    rule: Rule
    field: str  # event field: caller, callee, host, url, referrer
    observed: str  # the value as it appeared in the event (or the part of it that matched)
    normalized: str  # the same after normalization, as compared with the indicator
    indicator: Indicator


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record came from in Kafka (offline scans use the file name and line)."""

    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the store's change log: an upsert (full indicator) or a removal."""

    version: int
    op: str  # "upsert" | "remove"
    allowlist: bool
    indicator: Indicator  # for "remove" only type and value are meaningful


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """The changes after ``from_version`` up to and including ``to_version``."""

    from_version: int
    to_version: int
    changes: tuple[Change, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the matcher found in one event."""

    matches: tuple[Match, ...] = ()
    # fields whose value could not be read as a number/host (withheld, garbage): not matched,
    # not an error, counted in metrics
    unparsed: tuple[str, ...] = ()
