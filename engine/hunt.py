"""Retro-hunt over Kafka retention: the retained input topics, read over a time range by
record timestamp, matched exactly as the worker matches them (the same
:class:`~engine.core.processor.RecordProcessor`), alerts stamped ``retro: true`` and ``hunt``.

The hunt joins no consumer group and commits nothing: it assigns the partitions itself,
seeks each to the first offset at or after ``since`` (``offsets_for_times``) and reads up to
the first offset at or after ``until`` (or the end offset taken when the hunt started), so it
always ends and never disturbs the workers' group. A record in that offset range whose own
timestamp is outside ``[since, until)`` (producer clocks are not monotonic) is skipped.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from engine.core.models import ChangeSet, Indicator, IndicatorType, SourcePosition, Stream
from engine.core.processor import Output, RecordProcessor
from engine.errors import TransportError
from engine.kafka_io import check_connection
from engine.settings import KafkaSettings

# namespace of hunt ids: uuid5 over the hunt's parameters
HUNT_ID_NAMESPACE = uuid.UUID("8f3c2a61-4d7e-4b0a-9c1f-2e6b5d4a7c93")

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

# a hunt with partitions left to read that receives nothing for this long gives up
_STALL_SECONDS = 30.0


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w``, ``1h30m`` → milliseconds (positive)."""
    value = text.strip().lower()
    parts = _DURATION_PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"expected a duration such as 90s, 15m, 2h, 7d or 1h30m, got {text!r}")
    ms = sum(int(n) * _UNIT_MS[u] for n, u in parts)
    if ms <= 0:
        raise ValueError(f"a duration must be more than zero, got {text!r}")
    return ms


def hunt_id(
    since_ms: int, until_ms: int, topics: Iterable[str], indicators: str
) -> str:  # fmt: skip
    """Deterministic: the same window over the same topics with the same indicators (``all``,
    ``since:VERSION`` or the feeds' digest) is the same hunt."""
    name = "\x1f".join((str(since_ms), str(until_ms), ",".join(sorted(topics)), indicators))
    return str(uuid.uuid5(HUNT_ID_NAMESPACE, name))


def feeds_digest(contents: Iterable[tuple[str, bytes]]) -> str:
    """``feeds:<sha256>`` over each feed's name and bytes: what a feed hunt matched against."""
    digest = hashlib.sha256()
    for name, data in contents:
        digest.update(name.encode() + b"\x00" + hashlib.sha256(data).digest())
    return f"feeds:{digest.hexdigest()[:32]}"


def changed_indicators(changes: ChangeSet) -> tuple[Indicator, ...]:
    """The indicators (not allowlist entries) added or changed in ``changes`` and still there
    at its end, each as last written."""
    latest: dict[tuple[IndicatorType, str], Indicator | None] = {}
    for change in changes.changes:
        if change.allowlist:
            continue
        key = (change.indicator.type, change.indicator.value)
        latest[key] = change.indicator if change.op == "upsert" else None
    return tuple(ind for ind in latest.values() if ind is not None)


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition to read."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(slots=True)
class HuntSummary:
    """What one hunt read and found."""

    events: int = 0  # records read in the window (bad ones included)
    invalid: int = 0  # records that would be dead-lettered: counted, not sent again
    out_of_range: int = 0  # in the offset range, timestamp outside the window: skipped
    matched: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    by_stream: Counter[str] = field(default_factory=Counter)
    partitions: int = 0
    elapsed_s: float = 0.0

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_rule.values())

    @property
    def rate(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


class AlertSink(Protocol):
    """Where a hunt's alerts go."""

    async def write(self, output: Output) -> None: ...

    async def close(self) -> None: ...


class KafkaAlertSink:
    """Alerts to the alerts topic (the producer's ``acks=all``); ``close`` waits for every
    acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.sent = 0

    async def write(self, output: Output) -> None:
        try:
            await self._producer.send(self._topic, value=output.value, key=output.key)
        except KafkaError as exc:
            raise TransportError(f"sending a retro alert to {self._topic!r}: {exc}") from exc
        self.sent += 1

    async def close(self) -> None:
        try:
            await self._producer.flush()
        except KafkaError as exc:
            raise TransportError(f"sending retro alerts to {self._topic!r}: {exc}") from exc


class FileAlertSink:
    """Alerts as JSON lines to a file."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    async def write(self, output: Output) -> None:
        self._sink.write(output.value + b"\n")

    async def close(self) -> None:
        self._sink.flush()


def make_consumer(kafka: KafkaSettings, client_id: str = "scamwatch-hunt") -> AIOKafkaConsumer:
    """A consumer of no group that commits nothing (partitions are assigned by hand)."""
    return AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a start deleted by retention meanwhile: the oldest kept
        client_id=client_id,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )


async def partition_counts(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """How many partitions each topic has (a topic that does not exist: TransportError)."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics))
    except KafkaError as exc:
        raise TransportError(f"cannot read the metadata of {list(topics)!r}: {exc}") from exc
    finally:
        await admin.close()
    counts = {d["topic"]: len(d["partitions"]) for d in described if not d["error_code"]}
    missing = [t for t in topics if not counts.get(t)]
    if missing:
        raise TransportError(f"topic(s) {missing!r} do not exist")
    return {t: counts[t] for t in topics}


async def plan_ranges(
    consumer: AIOKafkaConsumer,
    kafka: KafkaSettings,
    topics: Sequence[str],
    since_ms: int,
    until_ms: int,
) -> list[PartitionRange]:
    """Per partition of ``topics``: the first offset at/after ``since`` and the first at/after
    ``until`` (the end offset now when there is none); empty ranges left out."""
    tps = [TopicPartition(topic, p) for topic, n in (await partition_counts(kafka, topics)).items()
           for p in range(n)]  # fmt: skip
    try:
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.offsets_for_times(dict.fromkeys(tps, until_ms))
        latest = await consumer.end_offsets(tps)
    except KafkaError as exc:
        raise TransportError(f"cannot read the offsets of {list(topics)!r}: {exc}") from exc
    ranges = []
    for tp in tps:
        start = starts.get(tp)
        if start is None:  # nothing at or after since
            continue
        end = ends.get(tp)
        stop = end.offset if end is not None else latest[tp]
        window = PartitionRange(tp.topic, tp.partition, start.offset, min(stop, latest[tp]))
        if window.size:
            ranges.append(window)
    return ranges


async def run_hunt(
    kafka: KafkaSettings,
    topics: Mapping[str, Stream],
    *,
    since_ms: int,
    until_ms: int,
    processor: RecordProcessor,
    sink: AlertSink,
    on_plan: Callable[[int], None] | None = None,
    on_progress: Callable[[HuntSummary, int], None] | None = None,
    on_events: Callable[[Stream, int], None] | None = None,
) -> HuntSummary:
    """Read every record of ``topics`` (topic → stream) timestamped in ``[since, until)``,
    match it through ``processor`` and write its alerts to ``sink``.

    ``on_plan(total)`` gets the number of offsets to read; ``on_progress(summary, read)``
    is called after each batch with the offsets read in it; ``on_events(stream, n)`` counts
    the events read (the ``scamwatch_hunt_events_total`` metric)."""
    summary = HuntSummary()
    started = time.monotonic()
    await check_connection(kafka)  # a refused password or certificate: the setting to fix
    consumer = make_consumer(kafka)
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise TransportError(f"Kafka at {kafka.bootstrap} is unreachable: {exc}") from exc
    try:
        ranges = await plan_ranges(consumer, kafka, list(topics), since_ms, until_ms)
        summary.partitions = len(ranges)
        if on_plan is not None:
            on_plan(sum(r.size for r in ranges))
        if ranges:
            await _read_ranges(
                consumer, ranges, topics, since_ms, until_ms, processor, sink, summary,
                on_progress, on_events,
            )  # fmt: skip
        await sink.close()
    finally:
        await consumer.stop()
        summary.elapsed_s = time.monotonic() - started
    return summary


async def _read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: list[PartitionRange],
    topics: Mapping[str, Stream],
    since_ms: int,
    until_ms: int,
    processor: RecordProcessor,
    sink: AlertSink,
    summary: HuntSummary,
    on_progress: Callable[[HuntSummary, int], None] | None,
    on_events: Callable[[Stream, int], None] | None,
) -> None:
    ends = {TopicPartition(r.topic, r.partition): r.end for r in ranges}
    consumer.assign(list(ends))
    for r in ranges:
        consumer.seek(TopicPartition(r.topic, r.partition), r.start)
    active = set(ends)
    last_record = time.monotonic()
    while active:
        try:
            batches = await consumer.getmany(*active, timeout_ms=1000, max_records=10_000)
        except KafkaError as exc:
            raise TransportError(f"reading {sorted(topics)!r}: {exc}") from exc
        read = 0
        for tp, records in batches.items():
            stream = topics[tp.topic]
            end = ends[tp]
            events = 0
            for record in records:
                if record.offset >= end:
                    break
                read += 1
                if not since_ms <= record.timestamp < until_ms:
                    summary.out_of_range += 1
                    continue
                events += 1
                source = SourcePosition(tp.topic, tp.partition, record.offset)
                outcome = processor.process(stream, record.value, record.key, source)
                if outcome.kind == "deadletter":
                    summary.invalid += 1  # the worker dead-lettered it already
                    continue
                if outcome.kind == "matched":
                    summary.matched += 1
                    for (rule, _severity), output in zip(
                        outcome.alerts, outcome.outputs, strict=True
                    ):
                        summary.alerts_by_rule[rule] += 1
                        await sink.write(output)
            summary.events += events
            summary.by_stream[stream.value] += events
            if on_events is not None and events:
                on_events(stream, events)
        if read:
            last_record = time.monotonic()
        for tp in list(active):
            # position, not the last record seen: transaction markers and compaction leave gaps
            if await consumer.position(tp) >= ends[tp]:
                active.discard(tp)
                consumer.pause(tp)
        if on_progress is not None:
            on_progress(summary, read)
        if active and time.monotonic() - last_record > _STALL_SECONDS:
            left = sorted(f"{tp.topic}[{tp.partition}]" for tp in active)
            raise TransportError(f"no records for {_STALL_SECONDS:.0f} s from {left}")
