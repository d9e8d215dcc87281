"""Every worker's view of every open exposure: it reads the web alerts of the last journey
window from the ``alerts`` topic itself, then follows the topic.

A plain aiokafka consumer in no consumer group: every partition assigned, each sought to
the first record at or after ``now - window`` (``offsets_for_times``), so a (re)started
worker rebuilds the exposures still open, whatever input partitions it owns, and one alert
reaches every worker within the fetch wait (~0.1-0.5 s). The worker also registers its own
web alerts at once (:class:`~engine.core.processor.Protection`), so a call right after the
page on the same worker does not wait for the round trip. Nothing is committed; the table is
:class:`~engine.core.journey.ExposureTable`, consulted by the processor without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.core.journey import ExposureTable
from engine.core.models import now_ms
from engine.core.records import Alert, RecordError
from engine.metrics import WorkerMetrics
from engine.settings import Settings

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 200  # how long a fetch waits for new alerts: the bound on "within 1 s"
EXPIRE_EVERY_S = 1.0
PARTITIONS_EVERY_S = 10.0  # partitions added to `alerts` are followed after this
_WEB = b'"stream":"web"'  # alerts of calls are skipped before being parsed


class ExposureReader:
    """Reads web alerts from ``alerts`` into an :class:`ExposureTable`."""

    def __init__(self, settings: Settings, table: ExposureTable, metrics: WorkerMetrics) -> None:
        self._settings = settings
        self._topic = settings.topics.alerts
        self.table = table
        self._metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()

    async def catch_up(self, within_s: float = 30.0) -> int:
        """Start, seek every partition to the window's start and read to the end offsets of
        now (at most ``within_s``): the exposures open at start. Returns how many."""
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="scamwatch-exposures",
            **self._settings.kafka.client_options(),
        )
        await consumer.start()
        self._consumer = consumer
        await self._assign_new(since_ms=now_ms() - self.table.window_ms)
        if not self._assigned:
            return 0
        ends = await consumer.end_offsets(list(self._assigned))
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            positions = {tp: await self._position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
            await self._read_batch()
        else:
            log.warning("exposures: not caught up with %s in %.0f s", self._topic, within_s)
        return self._expire()

    async def follow(self) -> None:
        """Follow the topic until cancelled (a Faust app task)."""
        consumer = self._consumer
        if consumer is None:
            await self.catch_up()
        next_expire = next_partitions = time.monotonic()
        try:
            while True:
                await self._read_batch()
                clock = time.monotonic()
                if clock >= next_expire:
                    next_expire = clock + EXPIRE_EVERY_S
                    self._expire()
                if clock >= next_partitions:
                    next_partitions = clock + PARTITIONS_EVERY_S
                    await self._assign_new(since_ms=None)
        finally:
            await self.stop()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _assign_new(self, since_ms: int | None) -> None:
        """Assign partitions of the topic not assigned yet: sought to ``since_ms`` at start,
        to their beginning when added later (all their records are new)."""
        consumer = self._consumer
        assert consumer is not None
        await consumer.force_metadata_update()
        partitions = consumer.partitions_for_topic(self._topic) or set()
        new = {TopicPartition(self._topic, p) for p in partitions} - self._assigned
        if not new:
            return
        # assign() starts every partition afresh: the ones followed already resume where
        # they were
        held = {tp: await self._position(tp) for tp in self._assigned}
        self._assigned |= new
        consumer.assign(sorted(self._assigned))
        for tp, offset in held.items():
            consumer.seek(tp, offset)
        if since_ms is None:
            await consumer.seek_to_beginning(*new)
            return
        found = await consumer.offsets_for_times(dict.fromkeys(new, max(0, since_ms)))
        late = [tp for tp, at in found.items() if at is None]  # nothing that recent
        for tp, at in found.items():
            if at is not None:
                consumer.seek(tp, at.offset)
        if late:
            await consumer.seek_to_end(*late)
        log.info("exposures: following %s (%d partitions)", self._topic, len(self._assigned))

    async def _position(self, tp: TopicPartition) -> int:
        assert self._consumer is not None
        return int(await self._consumer.position(tp))

    async def _read_batch(self) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=2000)
        now = now_ms()
        for records in batch.values():
            for record in records:
                self._take(record.value, now)
        if batch:
            await asyncio.sleep(0)  # let the records of the worker run between batches

    def _take(self, value: Any, now: int) -> None:
        if not isinstance(value, bytes) or _WEB not in value:
            return
        try:
            alert = Alert.from_json(value)
        except RecordError as exc:
            log.debug("exposures: skipped a record of %s: %s", self._topic, exc)
            return
        self.table.add(alert, now)

    def _expire(self) -> int:
        count = self.table.expire(now_ms())
        self._metrics.exposures.set(count)
        return count
