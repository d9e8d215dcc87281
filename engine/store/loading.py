"""Feed → store: the one way indicators get into an :class:`IndicatorStore` in bulk.

``scamwatch indicators load``, ``scan --indicators/--allowlist``, the demo, the traffic
generator and the benchmarks all load through :func:`load_feed` (a feed file) or
:func:`load_items` (items already parsed, or synthetic indicators), so batching, the
``--strict`` rule and the counts in the summary are the same everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.feeds import FeedItem, SkippedEntry, read_feed
from engine.core.models import Indicator, IndicatorType
from engine.errors import FeedError
from engine.store.base import IndicatorStore, UpsertResult

LOAD_BATCH = 5_000  # indicators per store call (the store pipelines them)
PROGRESS_STEP = 1_000  # report progress every so many items: a progress bar costs µs per update


@dataclass(slots=True)
class LoadReport:
    """What one load did: store counts, the bad lines, the skipped entries, valid lines by
    type."""

    result: UpsertResult = field(default_factory=UpsertResult)
    errors: list[FeedError] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)  # valid, nothing we match
    by_type: Counter[IndicatorType] = field(default_factory=Counter)
    items: int = 0  # lines/objects read, good or bad
    written: bool = True  # False: strict found bad lines and wrote nothing

    @property
    def valid(self) -> int:
        return sum(self.by_type.values())

    @property
    def invalid(self) -> int:
        return len(self.errors)


def load_feed(
    path: Path,
    store: IndicatorStore,
    *,
    format: str | None = None,
    type_: IndicatorType | None = None,
    source: str | None = None,
    region: str = "US",
    mapping: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
    allowlist: bool = False,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Read the feed at ``path`` (:func:`engine.core.feeds.read_feed`: format guessed from
    the extension when ``format`` is None) and load it into ``store``. A file that cannot be
    read at all raises :class:`FeedError`; bad lines are in the report."""
    items = read_feed(
        path, format=format, type_=type_, source=source, region=region, mapping=mapping
    )
    return load_items(items, store, allowlist=allowlist, strict=strict, on_progress=on_progress)


def load_items(
    items: Iterable[FeedItem],
    store: IndicatorStore,
    *,
    allowlist: bool = False,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Feed items into ``store`` in batches of LOAD_BATCH. The store works on one batch (in a
    helper thread: Redis round trips release the GIL) while the next one is parsed. With
    ``strict``, nothing is written unless every item is valid (skipped ones do not count).
    ``on_progress(n)`` is called with every PROGRESS_STEP items read."""
    report = LoadReport()
    added = updated = unchanged = 0
    pending: list[Indicator] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="indicator-load") as writer:
        in_flight: Future[UpsertResult] | None = None

        def flush(batch: list[Indicator]) -> None:
            nonlocal in_flight, added, updated, unchanged
            if in_flight is not None:
                done = in_flight.result()  # at most one batch in flight: memory stays bounded
                added, updated, unchanged = (
                    added + done.added,
                    updated + done.updated,
                    unchanged + done.unchanged,
                )
                in_flight = None
            if batch:
                in_flight = writer.submit(store.upsert, batch, allowlist=allowlist)

        for item in items:
            report.items += 1
            if on_progress is not None and report.items % PROGRESS_STEP == 0:
                on_progress(PROGRESS_STEP)
            if isinstance(item, FeedError):
                report.errors.append(item)
                continue
            if isinstance(item, SkippedEntry):
                report.skipped.append(item)
                continue
            report.by_type[item.type] += 1
            pending.append(item)
            if not strict and len(pending) >= LOAD_BATCH:
                flush(pending)
                pending = []
        if strict and report.errors:
            report.written = False
            return report
        flush(pending)
        flush([])
    report.result = UpsertResult(added=added, updated=updated, unchanged=unchanged)
    return report
