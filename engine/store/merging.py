"""What an upsert does to a store, worked out the same way by every backend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.core.models import Indicator, IndicatorType
from engine.store.base import UpsertResult

Key = tuple[IndicatorType, str]


@dataclass(slots=True)
class UpsertPlan:
    """The entries to write (key → new indicator) and the counts to report."""

    writes: dict[Key, Indicator] = field(default_factory=dict)
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def result(self) -> UpsertResult:
        return UpsertResult(added=self.added, updated=self.updated, unchanged=self.unchanged)


def plan_upsert(incoming: Iterable[Indicator], existing: Mapping[Key, Indicator]) -> UpsertPlan:
    """Merge ``incoming`` (in order) into ``existing``: each incoming indicator counts once as
    added, updated or unchanged; an entry that ends as it started is not written."""
    plan = UpsertPlan()
    current: dict[Key, Indicator] = {}
    for indicator in incoming:
        key = indicator.key
        old = current[key] if key in current else existing.get(key)
        if old is None:
            plan.added += 1
            new = indicator if _canonical(indicator) else indicator.merge(indicator)
        else:
            new = old.merge(indicator)
            if new == old:
                plan.unchanged += 1
                continue
            plan.updated += 1
        current[key] = new
    for key, new in current.items():
        if existing.get(key) != new:
            plan.writes[key] = new
    return plan


def _canonical(indicator: Indicator) -> bool:
    """Sources and tags already sorted and unique (as feeds deliver them), so no copy."""
    sources, tags = indicator.sources, indicator.tags
    if len(sources) < 2 and len(tags) < 2:  # the common case, checked cheaply
        return True
    return list(sources) == sorted(set(sources)) and list(tags) == sorted(set(tags))


def is_expired(indicator: Indicator, at_ms: int) -> bool:
    """Past ``valid_until`` (an entry not yet valid is not expired: it will be)."""
    return indicator.valid_until is not None and at_ms > indicator.valid_until
