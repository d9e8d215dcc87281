"""Automatic retro-hunts (``SCAMWATCH_RETROHUNT_SECONDS`` > 0): when new or changed
indicators are put in use, the worker hunts the input partitions it owns back over the
look-back for them only, and writes retro alerts (``retro: true``, ``hunt``) to ``alerts``.

**Where a hunt stops.** The follower tells :meth:`AutoHunter.on_version` the store version
it just put in use, on the event loop, before any record is matched against it. There, for
each owned partition, the next record to be matched live is known exactly: one after the
last the :class:`~engine.stream.app.Dispatcher` handled (none handled since the assignment:
the group's committed offset, read when the hunt starts). Records before that boundary were
matched without the new indicators and are hunted; records from it on are matched live
against them. So nothing falls in between and nothing is alerted twice.

**Merging.** Versions put in use while a hunt runs are merged into one pending hunt per
partition (the union of their indicators; each indicator up to the boundary of the version
that brought it), run when the current one ends: never a queue that grows without bound.

**Rebalance and restart.** The progress of a hunt is not persisted; what is persisted (in
Redis, next to the indicators) is, per input partition, the store version it was last
hunted through (:class:`HuntLedger`), written once the partition's hunt ended and its alerts
were acknowledged. A worker given a partition reads it: a partition never hunted is marked
with the worker's version (nothing to hunt: turning hunts on does not hunt everything); one
hunted through an older version than the worker's is hunted for the indicators changed since
then (read from the store's change log), up to the worker's own boundary. A partition
revoked mid-hunt is dropped by this worker and hunted again, from the start of the look-back,
by its new owner: alert ids are deterministic, so that repeat (that partition's hunt, and no
more) yields the same ids.

**Bounded.** Its own consumer (no group) and producer; a token bucket caps the events read
per second (``SCAMWATCH_RETROHUNT_RATE``) and the loop is yielded between batches of at most
:data:`BATCH` records, so the live path keeps the event loop. The partitions of a hunt are
read in turn, one batch of one at a time, so each moves on at the bounded rate; one that is
asked and has no records, every time for :data:`STALL_SECONDS`, is dropped (hunted again at
its next assignment).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from engine.core.matcher import Matcher
from engine.core.models import (
    Change,
    Indicator,
    IndicatorSnapshot,
    SourcePosition,
    Stream,
    now_ms,
)
from engine.core.processor import RecordProcessor
from engine.core.records import Hunt
from engine.core.timestamps import format_rfc3339
from engine.errors import ScamwatchError
from engine.hunt import hunt_id, make_consumer
from engine.kafka_io import make_producer
from engine.metrics import WorkerMetrics
from engine.settings import Settings
from engine.store.base import IndicatorStore

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (topic, partition)
IndicatorKey = tuple[str, str]  # (type, normalized value)

BATCH = 500  # records read and matched between two yields to the event loop
MAX_STEPS = 32  # versions merged into one partition's pending hunt before folding the oldest
STALL_SECONDS = 30.0  # a partition with records left, asked, yields none for this long: dropped
RETRY_SECONDS = 5.0


class TokenBucket:
    """At most ``rate`` events a second on average, bursts of at most ``burst``."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate / 10))
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def spend(self, n: int) -> float:
        """Take ``n`` tokens (the balance may go below zero); the seconds to wait before
        reading more."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
        self._last = now
        return max(0.0, -self._tokens / self.rate)


@dataclass(slots=True)
class PartitionRequest:
    """What one partition is to be hunted for: the indicators changed after ``from_version``,
    in steps ``(to_version, boundary)``: the changes up to ``to_version`` were put in use
    when the next record to match live was at ``boundary`` (None: nothing handled since the
    assignment; the group's committed offset then)."""

    from_version: int
    steps: list[tuple[int, int | None]] = field(default_factory=list)

    @property
    def to_version(self) -> int:
        return self.steps[-1][0] if self.steps else self.from_version

    def add(self, to_version: int, boundary: int | None) -> None:
        if to_version <= self.to_version:
            return
        if self.steps and self.steps[-1][1] == boundary:
            self.steps[-1] = (to_version, boundary)  # the same boundary: one step
            return
        self.steps.append((to_version, boundary))
        if len(self.steps) > MAX_STEPS:
            # fold the two oldest into one with the later boundary: its records were matched
            # live with the older indicators already, so this repeats alerts, never loses one
            (_, _), (v2, b2) = self.steps[0], self.steps[1]
            self.steps[0:2] = [(v2, b2)]

    def boundary_of(self, version: int) -> int | None:
        """The boundary of the step that put a change of ``version`` in use."""
        for to_version, boundary in self.steps:
            if version <= to_version:
                return boundary
        raise ValueError(f"version {version} is after {self.to_version}")


def indicators_to_hunt(
    request: PartitionRequest, changes: Iterable[Change], committed: int
) -> dict[IndicatorKey, tuple[Indicator, int]]:
    """The indicators (not allowlist entries) added or changed in the request's versions and
    still there at its last one, each as last written with the offset to hunt it up to (the
    boundary of its last upsert; ``committed`` for a boundary not known)."""
    latest: dict[IndicatorKey, tuple[Indicator, int] | None] = {}
    for change in changes:
        if change.allowlist or not request.from_version < change.version <= request.to_version:
            continue
        key = (change.indicator.type.value, change.indicator.value)
        if change.op != "upsert":
            latest[key] = None
            continue
        boundary = request.boundary_of(change.version)
        latest[key] = (change.indicator, committed if boundary is None else boundary)
    return {k: v for k, v in latest.items() if v is not None}


class HuntLedger(Protocol):
    """Per input partition, the store version it was hunted through."""

    def get(self, partitions: list[Partition]) -> dict[Partition, int | None]: ...

    def set(self, partition: Partition, version: int) -> None: ...


class MemoryHuntLedger:
    """A ledger in memory (tests)."""

    def __init__(self) -> None:
        self.versions: dict[Partition, int] = {}

    def get(self, partitions: list[Partition]) -> dict[Partition, int | None]:
        return {p: self.versions.get(p) for p in partitions}

    def set(self, partition: Partition, version: int) -> None:
        self.versions[partition] = version


class RedisHuntLedger:
    """The ledger in one Redis hash next to the store's keys (same hash tag, so a Redis
    Cluster keeps it on the store's node): ``P{i}:hunted:APP_ID``, field ``topic:partition``.
    """

    def __init__(self, store: Any, app_id: str) -> None:
        self._store = store  # a RedisStore: its client, connected at the first use
        self.key = f"{store.prefix}{{i}}:hunted:{app_id}"

    def get(self, partitions: list[Partition]) -> dict[Partition, int | None]:
        if not partitions:
            return {}
        values = self._store.client.hmget(self.key, [f"{t}:{p}" for t, p in partitions])
        return {tp: None if v is None else int(v) for tp, v in zip(partitions, values, strict=True)}

    def set(self, partition: Partition, version: int) -> None:
        self._store.client.hset(self.key, f"{partition[0]}:{partition[1]}", str(version))


@dataclass(slots=True)
class _Range:
    start: int
    end: int
    ends: dict[IndicatorKey, int]  # the offset each indicator is hunted up to (excluded)
    to_version: int
    empty_since: float | None = None  # asked alone and had no records, every time since


class AutoHunter:
    """The worker's automatic retro-hunts (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: IndicatorStore,
        ledger: HuntLedger,
        metrics: WorkerMetrics,
        last_handled: Callable[[str, int], int | None],
        version: Callable[[], int | None],
        topics: Mapping[str, Stream] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._ledger = ledger
        self._metrics = metrics
        self._last_handled = last_handled
        self._version = version
        self.topics = dict(
            topics or {settings.topics.calls: Stream.CALLS, settings.topics.web: Stream.WEB}
        )
        self.lookback_ms = settings.worker.retrohunt_seconds * 1000
        self.bucket = TokenBucket(settings.worker.retrohunt_rate)
        self.owned: set[Partition] = set()
        self.suspended: set[Partition] = set()  # revoked, not (yet) assigned again
        self.hunted: dict[Partition, int] = {}  # owned partitions: version requested through
        self.pending: dict[Partition, PartitionRequest] = {}
        self._wake = asyncio.Event()
        self._recoveries: set[asyncio.Task[None]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.hunts_done = 0
        self._completed: set[Partition] = set()  # partitions of the running hunt done
        self.stall_seconds = STALL_SECONDS
        self._turn = 0  # whose turn it is to be read first (see _fetch)
        self._outage: str | None = None  # Kafka or Redis down: said once, until a hunt works

    # -- told by the worker (on the event loop) ------------------------------------------

    def on_version(self, version: int) -> None:
        """The follower put ``version`` in use; no record was matched against it yet."""
        for tp in self.owned:
            hunted = self.hunted.get(tp)
            if hunted is None or hunted >= version:
                continue  # not recovered yet (recovery reads the version), or done already
            self._request(tp, hunted, version)
        self._wake.set()

    def assigned(self, partitions: Iterable[Any]) -> None:
        """The whole assignment after a rebalance (Faust's ``on_partitions_assigned``)."""
        now = {(tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics}
        for tp in (self.owned | self.suspended) - now:
            self._drop(tp)
        kept = self.suspended & now
        self.suspended -= kept
        new = now - self.owned - kept
        self.owned = now
        version = self._version()
        for tp in kept:
            hunted = self.hunted.get(tp)
            if version is not None and hunted is not None and hunted < version:
                # versions put in use while it was revoked: from the committed offset on,
                # where the consumer resumes, its records are matched against them
                self._request(tp, hunted, version)
        if new:
            task = asyncio.ensure_future(self._recover(sorted(new)))
            self._recoveries.add(task)
            task.add_done_callback(self._recoveries.discard)
        self._wake.set()

    def revoked(self, partitions: Iterable[Any]) -> None:
        """Revoked partitions stop being read at once; kept if assigned again."""
        gone = {(tp.topic, tp.partition) for tp in partitions} & self.owned
        self.owned -= gone
        self.suspended |= gone

    def _drop(self, tp: Partition) -> None:
        self.suspended.discard(tp)
        self.owned.discard(tp)
        self.hunted.pop(tp, None)
        if self.pending.pop(tp, None) is not None:
            log.info("automatic hunt of %s[%d] dropped: partition revoked", *tp)

    def _boundary(self, tp: Partition) -> int | None:
        last = self._last_handled(*tp)
        return None if last is None else last + 1

    def _request(self, tp: Partition, hunted: int, version: int) -> None:
        request = self.pending.get(tp)
        if request is None:
            request = self.pending[tp] = PartitionRequest(hunted)
        request.add(version, self._boundary(tp))
        self.hunted[tp] = version

    async def _recover(self, partitions: list[Partition]) -> None:
        """What a newly assigned partition is to be hunted for (the ledger's version)."""
        while True:
            partitions = [tp for tp in partitions if tp in self.owned and tp not in self.hunted]
            if not partitions:
                return
            try:
                done = await asyncio.to_thread(self._ledger.get, partitions)
            except Exception as exc:
                log.warning("reading the hunt ledger failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            version = self._version()
            if version is None:  # no snapshot yet: nothing is matched either
                await asyncio.sleep(1.0)
                continue
            fresh: list[Partition] = []
            for tp in partitions:
                if tp not in self.owned or tp in self.hunted:
                    continue
                hunted = done.get(tp)
                if hunted is None:
                    self.hunted[tp] = version  # never hunted: start from here
                    fresh.append(tp)
                elif hunted < version:
                    self._request(tp, hunted, version)
                    log.info(
                        "%s[%d] was hunted through v%d, in use v%d: hunting it",
                        *tp,
                        hunted,
                        version,
                    )
                else:
                    # another worker was further on; ours matches on v<version> until it
                    # catches up, so the partition is hunted from our version on
                    self.hunted[tp] = version
            self._wake.set()
            for tp in fresh:
                try:
                    await asyncio.to_thread(self._ledger.set, tp, version)
                except Exception as exc:
                    log.warning("writing the hunt ledger failed (%s)", exc)
            return

    # -- the hunting task -----------------------------------------------------------------

    async def run(self) -> None:
        """Hunt what is pending, one merged hunt at a time (cancelled when the worker stops)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                work = {tp: r for tp, r in self.pending.items() if tp in self.owned}
                for tp in work:
                    del self.pending[tp]
                if not work:
                    continue
                self._completed.clear()
                try:
                    await self._hunt(work)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if _retriable(exc):
                        # Kafka or Redis down: one warning for the outage, not one a retry
                        if self._outage is None:
                            log.warning(
                                "automatic hunt paused (%s); retrying every %g s",
                                exc,
                                RETRY_SECONDS,
                            )
                        self._outage = str(exc)
                    else:
                        log.exception("automatic hunt failed; its partitions are hunted again")
                    await asyncio.sleep(RETRY_SECONDS)
                    self._retry(work)
                else:
                    if self._outage is not None:
                        log.info("automatic hunt resumed after: %s", self._outage)
                        self._outage = None
        finally:
            await self.close()

    def _retry(self, work: dict[Partition, PartitionRequest]) -> None:
        """Put back what a failed hunt did not finish, before what arrived meanwhile, with
        the boundaries it had."""
        for tp, request in work.items():
            if tp in self._completed or (tp not in self.owned and tp not in self.suspended):
                continue
            later = self.pending.get(tp)
            steps = request.steps + (later.steps if later is not None else [])
            self.pending[tp] = PartitionRequest(request.from_version, steps)
        self._wake.set()

    async def close(self) -> None:
        for task in list(self._recoveries):
            task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        if self._consumer is None:
            consumer = make_consumer(self._settings.kafka, client_id="scamwatch-autohunt")
            await consumer.start()
            self._consumer = consumer
        if self._producer is None:
            self._producer = await make_producer(
                self._settings.kafka, client_id="scamwatch-autohunt"
            )
        return self._consumer, self._producer

    async def _committed(self, partitions: list[Partition]) -> dict[Partition, int]:
        """The group's committed offsets (-1: none)."""
        if not partitions:
            return {}
        admin = AIOKafkaAdminClient(**self._settings.kafka.client_options())
        await admin.start()
        try:
            tps = [TopicPartition(*tp) for tp in partitions]
            got = await admin.list_consumer_group_offsets(
                self._settings.worker.app_id, partitions=tps
            )
        finally:
            await admin.close()
        return {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()}

    async def _hunt(self, work: dict[Partition, PartitionRequest]) -> None:
        started_ms = now_ms()
        since_ms = started_ms - self.lookback_ms
        lo = min(r.from_version for r in work.values())
        hi = max(r.to_version for r in work.values())
        # the change log since the oldest version asked (each request takes its own span)
        changes = await asyncio.to_thread(self._store.changes_since, lo)
        if changes is None:
            log.warning(
                "the change log no longer reaches back to v%d: partitions %s are not hunted "
                "for the changes v%d..v%d",
                lo,
                sorted(work),
                lo,
                hi,
            )
            await self._mark_done({tp: r.to_version for tp, r in work.items()})
            return
        unknown = [tp for tp, r in work.items() if any(b is None for _, b in r.steps)]
        committed = await self._committed(unknown)
        plans: dict[Partition, dict[IndicatorKey, tuple[Indicator, int]]] = {}
        for tp, request in work.items():
            plans[tp] = indicators_to_hunt(request, changes.changes, max(0, committed.get(tp, 0)))
        indicators = {k: ind for plan in plans.values() for k, (ind, _) in plan.items()}
        nothing = {tp: work[tp].to_version for tp, plan in plans.items() if not plan}
        await self._mark_done(nothing)
        plans = {tp: plan for tp, plan in plans.items() if plan}
        if not plans:
            return
        allowlist = await asyncio.to_thread(lambda: tuple(self._store.iter(allowlist=True)))
        snapshot = IndicatorSnapshot(hi, tuple(indicators.values()), allowlist)
        region = self._settings.processing.default_region
        matcher = await asyncio.to_thread(Matcher.build, snapshot, default_region=region)
        topics = sorted({tp[0] for tp in plans})
        record = Hunt(
            id=hunt_id(since_ms, started_ms, topics, f"auto:v{lo}-v{hi}"),
            since=format_rfc3339(since_ms),
            until=format_rfc3339(started_ms),
        )
        processor = RecordProcessor(
            matcher=lambda: matcher,
            alerts_topic=self._settings.topics.alerts,
            deadletter_topic=self._settings.topics.deadletter,
            max_record_bytes=self._settings.processing.max_record_bytes,
            max_output_bytes=self._settings.processing.max_output_bytes,
            hunt=record,
        )
        consumer, producer = await self._clients()
        tps = [TopicPartition(*tp) for tp in plans]
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ranges: dict[Partition, _Range] = {}
        for tp, plan in plans.items():
            ends = {k: end for k, (_, end) in plan.items()}
            start = starts.get(TopicPartition(*tp))
            end = max(ends.values())
            if start is None or start.offset >= end:
                await self._mark_done({tp: work[tp].to_version})
                continue
            ranges[tp] = _Range(start.offset, end, ends, work[tp].to_version)
        if not ranges:
            return
        log.info(
            "automatic hunt %s: %d indicators (v%d..v%d) over %d partitions, %d offsets",
            record.id,
            len(indicators),
            lo,
            hi,
            len(ranges),
            sum(r.end - r.start for r in ranges.values()),
        )
        await self._read(consumer, producer, processor, ranges, since_ms)
        self.hunts_done += 1

    async def _mark_done(self, done: Mapping[Partition, int]) -> None:
        for tp, version in done.items():
            self._completed.add(tp)
            if tp in self.owned or tp in self.suspended:
                await asyncio.to_thread(self._ledger.set, tp, version)

    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        processor: RecordProcessor,
        ranges: dict[Partition, _Range],
        since_ms: int,
    ) -> None:
        consumer.assign([TopicPartition(*tp) for tp in ranges])
        for tp, r in ranges.items():
            consumer.seek(TopicPartition(*tp), r.start)
        m = self._metrics
        alerts_topic = self._settings.topics.alerts
        batch = max(1, min(BATCH, int(self.bucket.burst)))  # no batch beyond the budget
        while ranges:
            for tp in [tp for tp in ranges if tp not in self.owned and tp not in self.suspended]:
                del ranges[tp]  # revoked and not given back: its new owner hunts it
                log.info("automatic hunt of %s[%d] dropped: partition revoked", *tp)
            readable = [TopicPartition(*tp) for tp in ranges if tp in self.owned]
            if not readable:
                await asyncio.sleep(0.2)
                continue
            consumer.pause(*[TopicPartition(*tp) for tp in ranges if tp not in self.owned])
            consumer.resume(*readable)
            batches, empty = await self._fetch(consumer, readable, batch)
            read = 0
            for ktp, records in batches.items():
                tp = (ktp.topic, ktp.partition)
                span = ranges.get(tp)
                if span is None or tp not in self.owned:
                    continue
                stream = self.topics[ktp.topic]
                events = 0
                for record in records:
                    if record.offset >= span.end:
                        break
                    if record.timestamp < since_ms:
                        continue  # older than the look-back (producer clocks vary)
                    events += 1
                    source = SourcePosition(ktp.topic, ktp.partition, record.offset)
                    outcome = processor.process(stream, record.value, record.key, source)
                    if outcome.kind != "matched":
                        continue  # a bad record was dead-lettered by the live worker already
                    for alert, (rule, severity), output in zip(
                        outcome.alert_records, outcome.alerts, outcome.outputs, strict=True
                    ):
                        indicator = alert.matches[0].indicator
                        if record.offset >= span.ends.get((indicator.type, indicator.value), -1):
                            continue  # matched live against this indicator already
                        await producer.send(alerts_topic, value=output.value, key=output.key)
                        m.alerts.labels(rule=rule, severity=severity).inc()
                if events:
                    read += events
                    m.hunt_events.labels(stream=stream.value).inc(events)
                if records:
                    span.empty_since = None
            now = time.monotonic()
            stalled: set[Partition] = set()
            for ktp in empty:
                tp = (ktp.topic, ktp.partition)
                span = ranges.get(tp)
                if span is None:
                    continue
                if span.empty_since is None:
                    span.empty_since = now
                elif now - span.empty_since > self.stall_seconds:
                    stalled.add(tp)
            for tp in list(ranges):
                r = ranges[tp]
                if tp not in self.owned:
                    continue
                ktp = TopicPartition(*tp)
                # position, not the last record: transaction markers and compaction leave gaps
                if await consumer.position(ktp) >= r.end:
                    del ranges[tp]
                    await producer.flush()  # its alerts acknowledged before it is marked done
                    await self._mark_done({tp: r.to_version})
                    log.info("automatic hunt of %s[%d] done through v%d", *tp, r.to_version)
                elif tp in stalled:
                    del ranges[tp]
                    log.warning(
                        "automatic hunt of %s[%d]: no records for %.0f s, dropped (hunted "
                        "again at its next assignment)",
                        *tp,
                        self.stall_seconds,
                    )
            await asyncio.sleep(self.bucket.spend(read))  # at least one turn of the loop
        await producer.flush()

    async def _fetch(
        self, consumer: AIOKafkaConsumer, readable: list[TopicPartition], batch: int
    ) -> tuple[dict[TopicPartition, list[Any]], list[TopicPartition]]:
        """Up to ``batch`` records of one partition, each partition first in turn; and the
        partitions asked that had none. aiokafka's ``getmany`` over several partitions
        drains its buffered fetches in the order they arrived, and one fetch holds up to
        ``max_partition_fetch_bytes`` (thousands of records): at a bounded rate, a partition
        would wait for the whole fetch of another, longer than the stall time on a long
        retention, and be dropped unhunted. When none has records buffered, waits for any."""
        first = self._turn % len(readable)
        self._turn += 1
        empty: list[TopicPartition] = []
        for tp in readable[first:] + readable[:first]:
            got = await consumer.getmany(tp, timeout_ms=0, max_records=batch)
            if got.get(tp):
                return got, empty
            empty.append(tp)
        got = await consumer.getmany(*readable, timeout_ms=500, max_records=batch)
        return got, [tp for tp in empty if not got.get(tp)]


def _retriable(exc: BaseException) -> bool:
    """Kafka or Redis unreachable, for a while (retried quietly), not a bug (logged whole)."""
    return (isinstance(exc, ScamwatchError) and exc.retriable) or isinstance(
        exc, KafkaError | OSError | asyncio.TimeoutError
    )
