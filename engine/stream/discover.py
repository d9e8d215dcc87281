"""The ``discover`` agent: sightings in, ``discovered_scam_number`` alerts (and, with
``SCAMWATCH_DISCOVERY=indicator``, phone indicators) out. The logic is
:mod:`engine.core.discovery`; this is the Faust side.

The state is a Faust table (``scamwatch-discovery``, one :class:`NumberState` per number, as
JSON bytes) backed by a compacted changelog topic, so a worker that takes over a sightings
partition (after a SIGKILL or a rebalance) recovers its numbers first. Sightings are keyed by
the number, so the table's partition is the sighting's.

At-least-once: a sighting is acked (and so committed) only after its alert was acknowledged
by the broker and its indicator written, and the table is written after them, so a worker
dying in between sees the sighting again and raises the same alert (the same ``alert_id``)
rather than none.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from engine.core.discovery import (
    DiscoveryPolicy,
    ExpiryIndex,
    NumberState,
    discovered_indicator,
    discovery_alert,
    observe,
)
from engine.core.models import SourcePosition, now_ms
from engine.core.records import RecordError, Sighting
from engine.core.timestamps import parse_rfc3339
from engine.errors import ScamwatchError
from engine.metrics import WorkerMetrics
from engine.settings import Settings
from engine.store.base import IndicatorStore
from engine.stream.follower import IndicatorFollower
from engine.stream.held import held_events, held_topic

log = logging.getLogger(__name__)

TABLE_NAME = "scamwatch-discovery"
AGENT_NAME = "discover"
STORE_RETRY_SECONDS = 1.0
# Faust's buffer of table changelog records (``ProducerBufferT.max_messages``, 100): with more
# pending, its Conductor flushes them before delivering the next record and logs "producer
# buffer full" at WARNING each time. The agent writes the table faster than the buffer's
# sender empties it while aiokafka's batches fill (seen: 2,000-3,300 pending after a burst of
# 5,000 sightings; 243 warned flushes of 10-28 ms in 15 s of ~4k sightings/s). So the agent
# flushes them itself, quietly, once half of this many are pending, below the Conductor's
# ceiling, raised to this: the back-pressure on the table writes stays, the warnings go.
CHANGELOG_BUFFER_MESSAGES = 1000


def changelog_topic(settings: Settings) -> str:
    """Faust's name of the table's changelog topic."""
    return f"{settings.worker.app_id}-{TABLE_NAME}-changelog"


def policy_of(settings: Settings) -> DiscoveryPolicy:
    d = settings.discovery
    return DiscoveryPolicy(
        window_ms=d.discovery_window_seconds * 1000,
        min_subscribers=d.discovery_min_subscribers,
        ttl_ms=d.discovery_ttl_seconds * 1000,
    )


async def prepare_changelog(settings: Settings, *, poll_seconds: float = 1.0) -> int:
    """The partitions of ``sightings``, and the table's compacted changelog created with as
    many when missing (the app may not declare topics itself).

    The table needs the partition count of ``sightings``, so a worker that may not create
    topics and starts before ``sightings`` exists waits for it (saying so every 30 s), and
    goes on within ``poll_seconds`` of its creation."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    try:
        await admin.start()
        waited = 0.0
        while True:
            (info,) = await admin.describe_topics([settings.topics.sightings])
            if info["error_code"] == 0 and info["partitions"]:
                break
            if waited % 30 < poll_seconds:
                log.warning(
                    "topic %s does not exist yet: the discover agent needs its partition "
                    "count, so this worker waits for it (create it, or set "
                    "SCAMWATCH_DISCOVERY=off)",
                    settings.topics.sightings,
                )
            await asyncio.sleep(poll_seconds)
            waited += poll_seconds
        partitions = len(info["partitions"])
        name = changelog_topic(settings)
        if name not in set(await admin.list_topics()):
            topic = NewTopic(
                name,
                partitions,
                settings.topics.replication,
                topic_configs={"cleanup.policy": "compact"},
            )
            response: Any = await admin.create_topics([topic])
            for _, code, *_rest in response.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise ScamwatchError(f"cannot create {name}: {for_code(code).__name__}")
        return partitions
    finally:
        await admin.close()


class Discoverer:
    """Handles one sighting against the table: decide (core), alert, indicator, store state."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        *,
        follower: IndicatorFollower,
        store: IndicatorStore,
        metrics: WorkerMetrics,
    ) -> None:
        self.app = app
        self.policy = policy_of(settings)
        self.add_indicators = settings.discovery.discovery == "indicator"
        self.alerts_topic = settings.topics.alerts
        self.follower = follower
        self.store = store
        self.metrics = metrics
        self.expiry = ExpiryIndex(self.policy.window_ms)

    async def on_changelog_event(self, event: Any) -> None:
        """Faust's recovery callback: each changelog record read back notes when its number
        was last active, so a recovered number never sighted again expires too."""
        number = bytes(event.key).decode(errors="replace")
        value = event.message.value
        if value is None:  # a tombstone: deleted
            self.expiry.note(event.message.partition, number, None)
            return
        try:
            last = NumberState.from_dict(orjson.loads(value)).last_ms
        except (ValueError, TypeError) as exc:
            log.warning("discovery table entry %s unreadable (%r): never expires", number, exc)
            return
        self.expiry.note(event.message.partition, number, last)

    def drop_expired(self, table: Any, partition: int, clock_ms: int) -> None:
        """Delete the numbers of ``partition`` last active a window or more before
        ``clock_ms`` (in a sighting's context: the tombstone goes to that partition)."""
        for number in self.expiry.due(partition, clock_ms):
            key = number.encode()
            raw = table.get(key)
            if raw is None:
                continue
            state = NumberState.from_dict(orjson.loads(raw))
            if not self.expiry.is_expired(state, partition):
                self.expiry.note(partition, number, state.last_ms)  # sighted since: kept
                continue
            del table[key]
            self.metrics.discovery_expired.inc()

    async def handle(self, table: Any, message: Any) -> None:
        source = SourcePosition(message.topic, message.partition, message.offset)
        try:
            sighting = Sighting.from_json(message.value)
            ts_ms = parse_rfc3339(sighting.ts)
        except (RecordError, ScamwatchError, ValueError) as exc:
            log.warning("sighting at %s skipped: %s", source.as_dict(), exc)
            self.metrics.sightings_skipped.labels(reason="invalid").inc()
            return
        # never ahead of the wall clock: one sighting dated in the future expires nothing
        self.drop_expired(table, message.partition, min(ts_ms, now_ms()))
        matcher = self.follower.current()
        if matcher.number_allowlisted(sighting.number, now_ms()):
            self.metrics.sightings_skipped.labels(reason="allowlisted").inc()
            return
        key = sighting.number.encode()
        raw = table.get(key)
        state = NumberState.from_dict(None if raw is None else orjson.loads(raw))
        decision = observe(state, sighting, ts_ms, self.policy)
        if decision.discovery is not None:
            now = now_ms()
            indicator = discovered_indicator(decision.discovery, now, self.policy)
            alert_key, alert = discovery_alert(
                decision.discovery,
                sighting,
                source=source,
                indicator=indicator,
                indicator_version=self.follower.version or 0,
                emitted_ms=now,
            )
            if self.add_indicators:
                # in the store before the alert that announces it is out
                await self._upsert(indicator)
            sent = await self.app.producer.send(
                self.alerts_topic, alert_key, alert.to_json(), None, None, None
            )
            await sent  # acknowledged by the broker before the sighting is
            self.metrics.discovered.inc()
            self.metrics.alerts.labels(rule=alert.rule, severity=alert.severity).inc()
            log.info("discovered %s: %s", sighting.number, decision.discovery.to_dict())
        if decision.write:
            table[key] = orjson.dumps(decision.state.to_dict())
            self.expiry.note(message.partition, sighting.number, decision.state.last_ms)

    async def _upsert(self, indicator: Any) -> None:
        while True:  # Redis down: wait for it, the sighting stays unacked meanwhile
            try:
                await asyncio.to_thread(self.store.upsert, [indicator])
                return
            except ScamwatchError as exc:
                if not getattr(exc, "retriable", False):
                    raise
                log.warning("adding discovered %s failed (%r): retrying", indicator.value, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)


def discover_agent(
    app: faust.App,
    settings: Settings,
    *,
    partitions: int,
    follower: IndicatorFollower,
    store: IndicatorStore,
    metrics: WorkerMetrics,
) -> None:
    """Register the ``discover`` agent and its table on ``app`` (both data paths)."""
    discoverer = Discoverer(app, settings, follower=follower, store=store, metrics=metrics)
    table = app.Table(
        TABLE_NAME,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        on_changelog_event=discoverer.on_changelog_event,
        help="distinct exposed subscribers per sighted number (engine.core.discovery)",
    )
    topic = held_topic(app, settings.topics.sightings)

    async def discover(sightings: Any) -> None:
        buffer = app.producer.buffer
        buffer.max_messages = CHANGELOG_BUFFER_MESSAGES
        async for event in held_events(sightings):
            await discoverer.handle(table, event.message)
            event.ack()
            if buffer.size > CHANGELOG_BUFFER_MESSAGES // 2:
                # its changelog records sent before more are written (see
                # CHANGELOG_BUFFER_MESSAGES)
                await buffer.flush_atmost(buffer.size)

    app.agent(topic, name=AGENT_NAME)(discover)
