"""Follows the indicator store and keeps a current :class:`Matcher` for the record handlers.

The worker never asks the store per event. It loads a snapshot at start (a matcher built in
a thread and swapped in), then polls the store's version (one cheap GET) every
``poll_interval`` seconds; on a change it reads the change log since its version (every
change since the last poll: one batch) and applies it to the matcher in place
(:meth:`Matcher.prepare` in a thread, which builds a new keyword automaton only when
keywords come or go, then :meth:`Matcher.apply` on the event loop): the cost of what
changed, not of a rebuild. Handlers match on the event loop too, so an event is matched
wholly before or wholly after a batch. A full build and swap happens only at start, when
the change log no longer reaches back, after an outage, or when an update fails.

If the store cannot be reached the worker keeps matching on the last matcher, reports it
(``scamwatch_indicator_store_up`` 0, one warning per outage) and resyncs when it is back.

A matcher of a million indicators is millions of Python objects: left to the cyclic garbage
collector, every full collection walks them all and pauses the event loop for hundreds of
ms. :class:`FrozenHeap` moves them out of its way after each swap or in-place update
(``benchmarks/bench_gc.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator

from engine.core.matcher import Matcher
from engine.core.models import ChangeSet, IndicatorSnapshot, IndicatorType
from engine.errors import ScamwatchError
from engine.metrics import WorkerMetrics
from engine.store.base import IndicatorStore

log = logging.getLogger(__name__)

MatcherBuilder = Callable[[IndicatorSnapshot, str], Matcher]
# told the store version now in use after each in-place update or swap (not the first
# load), on the event loop before any record is matched against it: the automatic
# retro-hunt takes its per-partition boundaries there
VersionListener = Callable[[int], None]


def _build(snapshot: IndicatorSnapshot, default_region: str) -> Matcher:
    return Matcher.build(snapshot, default_region=default_region)


class FrozenHeap:
    """Keeps the matcher out of the cyclic garbage collector's walks, built and swapped in.

    A full collection walks every tracked object while the event loop waits: hundreds of ms
    to seconds with a 1M-indicator matcher. So automatic collection is off while a matcher
    is built (each one would walk the half-built matcher, ever larger; reference counting
    still frees all acyclic garbage meanwhile), and after the swap ``gc.freeze()`` moves
    everything alive, the new matcher above all, to the permanent generation, which
    collections never walk. A retired matcher is still freed at once: it holds no reference
    cycle, so its reference count frees it (the unit tests hold it to that). What freezing
    can keep is cyclic garbage that existed at a swap; so when the frozen generation has
    grown ``compact_growth`` times since the last full pass, one full pass (unfreeze,
    collect, freeze) frees it: one pause per doubling, not one every few seconds.

    The growth is counted from what each freeze adds (the objects of the collected
    generations, a walk of those only) and recounted exactly at most once a
    ``recount_seconds``: ``gc.get_freeze_count()`` walks the whole permanent generation
    (~50 ms per 4M objects on this project's machine; a 1M-indicator worker holds more),
    and called after every in-place update it cost the event loop more than the update
    (``bench_pipeline.py``'s live_updates row: 84 % of the rate without changes, at one
    change a second).

    ``enabled=False`` (``SCAMWATCH_GC_FREEZE=false``) leaves the collector as Python has it,
    pauses included: only to measure them.
    """

    def __init__(
        self, compact_growth: float = 2.0, *, enabled: bool = True, recount_seconds: float = 60.0
    ) -> None:
        self.enabled = enabled
        self._growth = compact_growth
        self._recount = recount_seconds
        self._baseline: int | None = None  # frozen objects after the last full pass
        self._frozen = 0  # frozen objects now, as counted (dead ones drop out at a recount)
        self._counted_at = 0.0  # time.monotonic() of the last exact count
        self.full_passes = 0

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """No automatic collection inside (process-wide: the event loop's thread too)."""
        if not self.enabled:
            yield
            return
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if enabled:
                gc.enable()

    def after_swap(self) -> None:
        """Freeze what is alive (no walk: ``gc.freeze`` only moves the generations' lists).
        Also after an in-place update, so the indicators it added join the matcher there."""
        if not self.enabled:
            return
        adding = sum(len(gc.get_objects(generation=g)) for g in range(3))
        gc.freeze()
        if self._baseline is None:
            self.full_pass()
            return
        if time.monotonic() - self._counted_at >= self._recount:
            self._frozen = gc.get_freeze_count()
            self._counted_at = time.monotonic()
        else:
            self._frozen += adding
        if self._frozen > self._growth * self._baseline:
            self.full_pass()

    def full_pass(self) -> None:
        """Collect everything once, frozen included, and freeze what is left."""
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._baseline = self._frozen = gc.get_freeze_count()
        self._counted_at = time.monotonic()
        self.full_passes += 1
        log.info(
            "full garbage collection: %d objects frozen, %.3f s",
            self._baseline,
            time.perf_counter() - started,
        )


class IndicatorFollower:
    """Owns the worker's current matcher and keeps it in step with the store."""

    def __init__(
        self,
        store: IndicatorStore,
        *,
        metrics: WorkerMetrics,
        default_region: str = "US",
        poll_interval: float = 0.5,
        build: MatcherBuilder = _build,
        heap: FrozenHeap | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._region = default_region
        self._poll_interval = poll_interval
        self._build = build
        self._heap = heap if heap is not None else FrozenHeap()
        self._counts: dict[IndicatorType, int] = {}  # what the scamwatch_indicators gauge says
        self._version: int | None = None  # None until a snapshot was loaded
        self._store_up: bool | None = None
        self.matcher: Matcher = build(IndicatorSnapshot(version=0), default_region)
        self.listeners: list[VersionListener] = []

    @property
    def version(self) -> int | None:
        """The store version the current matcher was built from (None: no snapshot yet)."""
        return self._version

    def current(self) -> Matcher:
        return self.matcher

    async def load(self, wait_seconds: float) -> bool:
        """Load the first snapshot, retrying with backoff for up to ``wait_seconds``.

        True when loaded. False when the store did not answer in time: the worker then runs
        on an empty matcher (every event clean) until the store answers, and says so loudly.
        """
        deadline = time.monotonic() + wait_seconds
        delay = 0.25
        while True:
            try:
                await self._reload()
                return True
            except ScamwatchError as exc:
                if not exc.retriable:
                    raise
                self._set_up(False, exc)
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error(
                        "indicator store still unreachable after %.0f s (%s): STARTING WITH NO "
                        "INDICATORS, every event is clean until the store answers",
                        wait_seconds,
                        exc,
                    )
                    return False
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        """Poll forever (cancelled when the worker stops)."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll_interval)

    async def poll_once(self) -> bool:
        """One step of following the store; True when a new matcher was swapped in."""
        try:
            if self._version is None or self._store_up is False:
                # no snapshot yet, or back from an outage: a restarted Redis (or a replica
                # promoted) may reuse version numbers, so never trust them across an outage
                await self._reload()
                return True
            version = await asyncio.to_thread(self._store.version)
            if version == self._version:
                self._set_up(True)
                return False
            changes = None
            if version > self._version:
                changes = await asyncio.to_thread(self._store.changes_since, self._version)
            if changes is None:
                # the log no longer reaches back, or the store went back (wiped): start over
                await self._reload()
            else:
                await self._apply(changes)
            self._set_up(True)
            return True
        except ScamwatchError as exc:
            if exc.retriable:  # the store is down: report it, try again next poll
                self._set_up(False, exc)
            else:
                log.error("following the indicator store failed (%s); keeping the matcher", exc)
        except Exception:
            # a bug must not stop following: keep the current matcher, try again next poll
            log.exception("following the indicator store failed; keeping the current matcher")
        return False

    async def _reload(self) -> None:
        snapshot = await asyncio.to_thread(self._store.snapshot)
        self._set_up(True)
        self._metrics.snapshot_reloads.inc()
        await self._swap(snapshot)

    async def _apply(self, changes: ChangeSet) -> None:
        """Apply one batch of changes to the current matcher in place (see the module
        docstring); if that fails, build afresh from a snapshot."""
        matcher = self.matcher
        try:
            # only reads the matcher; builds a new keyword automaton if keywords come or go
            prepared = await asyncio.to_thread(matcher.prepare, changes)
            started = time.perf_counter()
            deltas = matcher.apply(prepared)  # on the event loop: between two events
        except Exception:
            # a half-applied batch must not stay in use: the snapshot replaces it
            log.exception("applying changes to the matcher failed; reloading the snapshot")
            await self._reload()
            return
        previous = self._version
        self._version = changes.to_version
        self._heap.after_swap()  # what the update added is frozen with the rest
        elapsed = time.perf_counter() - started  # the event loop's time, the freeze's included
        m = self._metrics
        m.update_seconds.observe(elapsed)
        m.changes_applied.inc(len(changes.changes))
        m.swaps.inc()
        m.indicator_version.set(changes.to_version)
        for type_, delta in deltas.items():
            count = self._counts[type_] = self._counts.get(type_, 0) + delta
            if delta:
                m.indicators.labels(type=type_.value).set(count)
        log.info(
            "matcher v%s -> v%s updated in place: %d changes in %.4f s",
            previous,
            changes.to_version,
            len(changes.changes),
            elapsed,
        )
        self._tell(changes.to_version)  # no await since apply(): no record matched on it yet

    def _build_and_count(
        self, snapshot: IndicatorSnapshot
    ) -> tuple[Matcher, dict[IndicatorType, int]]:
        # counting checks expiry on every indicator (~0.25 s at 1M): in the thread as well
        matcher = self._build(snapshot, self._region)
        return matcher, matcher.counts()

    async def _swap(self, snapshot: IndicatorSnapshot) -> None:
        started = time.perf_counter()
        with self._heap.building():
            # a million indicators take seconds to build: off the event loop
            matcher, counts = await asyncio.to_thread(self._build_and_count, snapshot)
            elapsed = time.perf_counter() - started
            previous = self._version
            self.matcher = matcher  # one reference assignment: handlers see old or new
            self._version = snapshot.version
            self._heap.after_swap()  # the retired matcher was freed at the assignment above
        if previous is not None:
            self._tell(snapshot.version)  # no await since the assignment
        m = self._metrics
        m.build_seconds.observe(elapsed)
        m.swaps.inc()
        m.indicator_version.set(snapshot.version)
        self._counts = dict(counts)
        for type_, count in counts.items():
            m.indicators.labels(type=type_.value).set(count)
        log.info(
            "matcher v%s -> v%s swapped in: %d indicators, %d allowlisted, built in %.3f s",
            previous,
            snapshot.version,
            len(snapshot.indicators),
            len(snapshot.allowlist),
            elapsed,
        )

    def _tell(self, version: int) -> None:
        for listener in self.listeners:
            try:
                listener(version)
            except Exception:
                log.exception("a listener of the indicator version failed")

    def _set_up(self, up: bool, exc: BaseException | None = None) -> None:
        if not up:
            self._metrics.store_errors.inc()
        if up == self._store_up:
            return
        self._store_up = up
        self._metrics.store_up.set(1 if up else 0)
        if up:
            log.info("indicator store reachable (matcher version %s)", self._version)
        else:
            log.warning(
                "indicator store unreachable (%s): matching on the last snapshot (version %s) "
                "until it is back",
                exc,
                self._version,
            )
