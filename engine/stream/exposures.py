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
from engine.core.records import RecordError
from engine.metrics import WorkerMetrics
from engine.settings import Settings

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 200  # how long a fetch waits for new alerts: the bound on "within 1 s"
EXPIRE_EVERY_S = 1.0
METADATA_MAX_AGE_MS = 2000
_WEB = b'"stream":"web"'  # alerts of calls are skipped before being parsed


class ExposureReader:
    """Reads web alerts from ``alerts`` into an :class:`ExposureTable`."""

    def __init__(self, settings: Settings, table: ExposureTable, metrics: WorkerMetrics) -> None:
        self._settings = settings
        self._topic = settings.topics.alerts
        self.table = table
        self._metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None

    async def catch_up(self, within_s: float = 30.0) -> int:
        """Start, seek every partition to the window's start and read to the end offsets of
        now (at most ``within_s``): the exposures open at start. Returns how many."""
        # subscribed with no group: aiokafka assigns every partition itself, and follows
        # partitions added later (from their beginning: old alerts there are expired anyway)
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="scamwatch-exposures",
            metadata_max_age_ms=METADATA_MAX_AGE_MS,  # a topic created later is seen soon
            # gathered by the broker (each alert answered at once costs the event loop a fetch)
            fetch_min_bytes=self._settings.worker.fetch_min_bytes,
            fetch_max_wait_ms=self._settings.worker.fetch_max_wait_ms,
            **self._settings.kafka.client_options(),
        )
        await consumer.start()
        self._consumer = consumer
        exists = self._topic in await consumer.topics()
        # subscribed after start: start() refuses a topic that does not exist yet
        consumer.subscribe([self._topic])
        if not exists:
            # not created yet (SCAMWATCH_CREATE_TOPICS false): followed once it is
            log.warning("exposures: %s does not exist yet", self._topic)
            return 0
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:  # the assignment follows the first metadata
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        assigned = sorted(consumer.assignment())
        if not assigned:
            log.warning("exposures: %s has no partitions yet", self._topic)
            return 0
        since = max(0, now_ms() - self.table.window_ms)
        found = await consumer.offsets_for_times(dict.fromkeys(assigned, since))
        late = [tp for tp, at in found.items() if at is None]  # nothing that recent
        for tp, at in found.items():
            if at is not None:
                consumer.seek(tp, at.offset)
        if late:
            await consumer.seek_to_end(*late)
        ends = await consumer.end_offsets(assigned)
        log.info("exposures: following %s (%d partitions)", self._topic, len(assigned))
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
        if self._consumer is None:
            await self.catch_up()
        next_expire = time.monotonic()
        try:
            while True:
                await self._read_batch()
                clock = time.monotonic()
                if clock >= next_expire:
                    next_expire = clock + EXPIRE_EVERY_S
                    self._expire()
        finally:
            await self.stop()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

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
            self.table.add_json(value, now)
        except RecordError as exc:
            log.debug("exposures: skipped a record of %s: %s", self._topic, exc)

    def _expire(self) -> int:
        count = self.table.expire(now_ms())
        self._metrics.exposures.set(count)
        return count
