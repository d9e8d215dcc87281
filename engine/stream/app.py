"""The Faust app: one agent per input topic, each a few lines (read -> process -> send).

Delivery is at-least-once, and we do not rely on Faust's automatic acks for it. Faust acks an
event when its agent asks for the next one, and commits acked offsets every
``broker_commit_interval`` after ``producer.flush()``; but aiokafka's ``flush()`` only waits
for the in-flight batches to *finish*, failed or not, so with automatic acks an alert whose
batch failed would still have its input committed. So the agents iterate ``stream.noack()``
and :class:`Dispatcher` acks an event only when every record it produced for it was
acknowledged by the broker (a done-callback on the send futures: no round trip per event,
sends stay pipelined). Faust commits, per partition, only the run of consecutive acked
offsets, so an unacknowledged send holds back the commit of its input and everything after
it. A send that fails for good stops the worker (exit code 1) without acking: its input is
read again after the restart, which is what at-least-once asks for.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust

from engine.core.models import SourcePosition, Stream
from engine.metrics import WorkerMetrics
from engine.settings import Settings
from engine.stream.follower import IndicatorFollower
from engine.stream.processor import Outcome, RecordProcessor

log = logging.getLogger(__name__)

FatalHandler = Callable[[BaseException], None]


class RawSchema(faust.Schema):  # type: ignore[type-arg]
    """Hands the record's bytes to the agent untouched: no codec, so nothing Faust could fail
    to decode (and drop), and no per-record serializer lookups on the hot path."""

    def compile(self, app: Any, **kwargs: Any) -> Callable[..., Awaitable[Any]]:
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


class Dispatcher:
    """Processes one Faust event, records its metrics, sends its outputs, acks on delivery."""

    def __init__(
        self, processor: RecordProcessor, metrics: WorkerMetrics, on_fatal: FatalHandler
    ) -> None:
        self._processor = processor
        self.metrics = metrics
        self.on_fatal = on_fatal
        self._failed = False
        self._event_counters: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}

    async def handle(self, app: faust.App, stream: Stream, event: Any) -> None:
        message = event.message
        source = SourcePosition(message.topic, message.partition, message.offset)
        try:
            outcome = self._processor.process(stream, message.value, message.key, source)
            self._observe(outcome)
        except Exception as exc:
            # process() returns an outcome for any input; reaching this is a bug, and an
            # event left unacked would silently hold back every later commit: stop instead
            log.exception("unexpected failure handling %s", source.as_dict())
            self._fatal(source, exc, "handling failed unexpectedly")
            return
        if not outcome.outputs:
            event.ack()
            return
        futures: list[Awaitable[Any]] = []
        try:
            for out in outcome.outputs:
                # returns once the record is queued in the producer, not when it is acked
                futures.append(
                    await app.producer.send(out.topic, out.key, out.value, None, None, None)
                )
        except Exception as exc:
            self._fatal(source, exc, "the producer refused an output")
            return
        pending = asyncio.gather(*futures)
        pending.add_done_callback(lambda done: self._delivered(done, event, source))

    def _delivered(self, done: asyncio.Future[Any], event: Any, source: SourcePosition) -> None:
        if done.cancelled():
            return  # shutting down: not acked, so read again after the restart
        exc = done.exception()
        if exc is not None:
            self._fatal(source, exc, "the broker did not acknowledge an output")
            return
        event.ack()

    def _fatal(self, source: SourcePosition, exc: BaseException, what: str) -> None:
        self.metrics.send_failures.inc()
        if self._failed:
            return
        self._failed = True
        log.error(
            "%s for %s (%r): stopping without committing it; it is processed again after "
            "the restart",
            what,
            source.as_dict(),
            exc,
        )
        self.on_fatal(exc)

    def _observe(self, outcome: Outcome) -> None:
        m = self.metrics
        stream = outcome.stream.value
        # label lookups cost microseconds; the hot path keeps the children it has seen
        counter = self._event_counters.get((stream, outcome.kind))
        if counter is None:
            counter = m.events.labels(stream=stream, outcome=outcome.kind)
            self._event_counters[(stream, outcome.kind)] = counter
        counter.inc()
        if outcome.latency_s is not None:
            histogram = self._latency.get(stream)
            if histogram is None:
                histogram = self._latency[stream] = m.latency.labels(stream=stream)
            histogram.observe(outcome.latency_s)
        for rule, severity in outcome.alerts:
            m.alerts.labels(rule=rule, severity=severity).inc()
        if outcome.reason is not None:
            m.deadletters.labels(stream=stream, reason=outcome.reason).inc()
        for field in outcome.unparsed:
            m.unparsed.labels(stream=stream, field=field).inc()


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for the Kafka security settings (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
    )


def create_app(
    settings: Settings,
    *,
    dispatcher: Dispatcher,
    follower: IndicatorFollower,
    web_port: int,
    datadir: Path,
) -> faust.App:
    """A Faust app consuming ``calls`` and ``web`` as raw bytes (decoding is ours: Faust's
    own deserializer logs and drops what it cannot decode)."""
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_broker_urls,
        broker_credentials=broker_credentials(settings),
        autodiscover=False,
        datadir=str(datadir),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_port=web_port,
        web_bind=settings.web_bind,
        # the assignor's leader topic is only for tables, which this app has none of
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # a few ms of batching: one produce request per batch, not per alert
        producer_linger=settings.producer_linger_seconds,
        # outputs are capped at max_output_bytes; room for the key and the batch header
        producer_max_request_size=settings.max_output_bytes + 65_536,
        # on stop and on rebalance, wait until started events are acked, then commit
        stream_wait_empty=True,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 4),
    )

    def agent_for(stream: Stream, topic_name: str) -> None:
        topic = app.topic(topic_name, schema=RawSchema())

        async def consume(events: Any) -> None:
            async for event in events.noack().events():
                await dispatcher.handle(app, stream, event)

        consume.__name__ = consume.__qualname__ = f"scamwatch_{stream.value}"
        app.agent(topic, name=f"scamwatch.{stream.value}")(consume)

    agent_for(Stream.CALLS, settings.topic_calls)
    agent_for(Stream.WEB, settings.topic_web)

    async def follow() -> None:
        await follower.run()

    app.task(follow)
    inputs = {settings.topic_calls, settings.topic_web}

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        count = sum(1 for tp in assigned if tp.topic in inputs)
        dispatcher.metrics.assigned_partitions.set(count)
        log.info("assigned %d input partitions: %s", count, sorted(map(tuple, assigned)))

    app.on_partitions_assigned.connect(on_assigned)
    return app


def fatal_via(worker_crash: Callable[[BaseException], Awaitable[None]]) -> FatalHandler:
    """A fatal handler that crashes the Faust worker (it stops and exits non-zero)."""

    tasks: set[asyncio.Future[None]] = set()

    def handler(exc: BaseException) -> None:
        task = asyncio.ensure_future(worker_crash(exc))
        tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(tasks.discard)

    return handler
