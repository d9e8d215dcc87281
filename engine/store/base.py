"""The indicator store interface (the source of truth workers follow)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from engine.core.models import ChangeSet, Indicator, IndicatorSnapshot, IndicatorType


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What a bulk load did: new entries, entries that changed, entries already there as given."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    version: int
    by_type: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    allowlist_by_type: dict[str, int] = field(default_factory=dict)
    expired: int = 0


class IndicatorStore(ABC):
    """Indicators and allowlist, a version that grows with every change, and a change log.

    Identity is ``(type, normalized value)``; upserting an indicator that is there already
    merges it (:meth:`Indicator.merge`); upserting what is there already as it is changes
    nothing and does not move the version. Calls are synchronous; async callers use a thread.
    """

    @abstractmethod
    def upsert(self, indicators: Iterable[Indicator], *, allowlist: bool = False) -> UpsertResult:
        """Add or merge indicators (pipelined in bulk where the backend allows)."""

    @abstractmethod
    def remove(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> bool:
        """Remove one entry by its normalized value; False when it was not there."""

    @abstractmethod
    def get(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> Indicator | None:
        """One entry by its normalized value."""

    @abstractmethod
    def iter(
        self,
        *,
        type_: IndicatorType | None = None,
        source: str | None = None,
        allowlist: bool = False,
    ) -> Iterator[Indicator]:
        """Entries, optionally filtered by type and source."""

    @abstractmethod
    def version(self) -> int:
        """The current version (0 for an empty store that never changed)."""

    @abstractmethod
    def snapshot(self) -> IndicatorSnapshot:
        """Every indicator and allowlist entry, consistent with one version."""

    @abstractmethod
    def changes_since(self, version: int) -> ChangeSet | None:
        """The changes after ``version``; ``None`` when the log no longer reaches back that
        far (the caller must reload the snapshot)."""

    @abstractmethod
    def purge_expired(self, at_ms: int) -> int:
        """Remove entries past their ``valid_until``; returns how many."""

    @abstractmethod
    def stats(self, at_ms: int) -> StoreStats:
        """Counts by type and source, allowlist counts, expired entries, version."""
