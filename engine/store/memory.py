"""The in-memory indicator store: tests, benchmarks and offline ``scan`` (no Redis)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain

from engine.core.models import Change, ChangeSet, Indicator, IndicatorSnapshot, IndicatorType
from engine.store.base import IndicatorStore, StoreStats, UpsertResult
from engine.store.merging import Key, is_expired, plan_upsert


class MemoryStore(IndicatorStore):
    """Dicts keyed by ``(type, value)`` and a change log capped at ``change_log_size``
    entries. Thread-safe: every call holds one lock, so a snapshot is of one version."""

    def __init__(self, change_log_size: int = 100_000) -> None:
        if change_log_size < 1:
            raise ValueError("change_log_size must be at least 1")
        self._entries: dict[bool, dict[Key, Indicator]] = {False: {}, True: {}}
        self._version = 0
        self._log: deque[Change] = deque(maxlen=change_log_size)
        self._lock = threading.RLock()

    def upsert(self, indicators: Iterable[Indicator], *, allowlist: bool = False) -> UpsertResult:
        items = list(indicators)
        with self._lock:
            entries = self._entries[allowlist]
            plan = plan_upsert(items, entries)
            for key, indicator in plan.writes.items():
                entries[key] = indicator
                self._record("upsert", allowlist, indicator)
            return plan.result

    def remove(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> bool:
        with self._lock:
            removed = self._entries[allowlist].pop((type_, value), None)
            if removed is None:
                return False
            self._record("remove", allowlist, Indicator(type=type_, value=value))
            return True

    def get(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> Indicator | None:
        with self._lock:
            return self._entries[allowlist].get((type_, value))

    def iter(
        self,
        *,
        type_: IndicatorType | None = None,
        source: str | None = None,
        allowlist: bool = False,
    ) -> Iterator[Indicator]:
        with self._lock:
            selected = [
                ind
                for ind in self._entries[allowlist].values()
                if (type_ is None or ind.type is type_)
                and (source is None or source in ind.sources)
            ]
        return iter(selected)

    def version(self) -> int:
        with self._lock:
            return self._version

    def snapshot(self) -> IndicatorSnapshot:
        with self._lock:
            return IndicatorSnapshot(
                version=self._version,
                indicators=tuple(self._entries[False].values()),
                allowlist=tuple(self._entries[True].values()),
            )

    def changes_since(self, version: int) -> ChangeSet | None:
        with self._lock:
            current = self._version
            if version == current:
                return ChangeSet(from_version=version, to_version=current)
            if version > current or not self._log or self._log[0].version > version + 1:
                return None  # ahead of us (store reset) or the log was trimmed past it
            first = self._log[0].version
            changes = tuple(self._log[i] for i in range(version + 1 - first, len(self._log)))
            return ChangeSet(from_version=version, to_version=current, changes=changes)

    def purge_expired(self, at_ms: int) -> int:
        with self._lock:
            purged = 0
            for allowlist, entries in self._entries.items():
                for key in [k for k, ind in entries.items() if is_expired(ind, at_ms)]:
                    del entries[key]
                    self._record("remove", allowlist, Indicator(type=key[0], value=key[1]))
                    purged += 1
            return purged

    def stats(self, at_ms: int) -> StoreStats:
        with self._lock:
            by_type: dict[str, int] = {}
            by_source: dict[str, int] = {}
            allow_by_type: dict[str, int] = {}
            expired = 0
            for ind in self._entries[False].values():
                by_type[ind.type.value] = by_type.get(ind.type.value, 0) + 1
                for src in ind.sources:
                    by_source[src] = by_source.get(src, 0) + 1
            for ind in self._entries[True].values():
                allow_by_type[ind.type.value] = allow_by_type.get(ind.type.value, 0) + 1
            for ind in chain(self._entries[False].values(), self._entries[True].values()):
                expired += is_expired(ind, at_ms)
            return StoreStats(
                version=self._version,
                by_type=by_type,
                by_source=by_source,
                allowlist_by_type=allow_by_type,
                expired=expired,
            )

    def _record(self, op: str, allowlist: bool, indicator: Indicator) -> None:
        self._version += 1
        self._log.append(Change(self._version, op, allowlist, indicator))
