"""The Faust app: the consumer group, rebalancing, offsets and commits, the producer, the web
server and the lifecycle are Faust's; the per-record data path is one of two
(``SCAMWATCH_DATA_PATH``), both calling the same :class:`Dispatcher` and core processor.

``agents`` (the reference): each input topic is consumed by a plain Faust agent
(:func:`input_agent`) on Faust's public API. ``inline`` (the default, and why it exists,
measured): a worker on agents spends most of its CPU per record in the machinery between
the consumer and an agent (the consumer's ``wait_first`` per record, the Conductor, the
channel queue, ``Stream.__aiter__`` and its sensors, the agent's task): ~330 µs of CPU a
record, against ~110-120 µs and ~2.7x the throughput on the inline path, most of it from no
``wait_first`` per record. Each input topic is an :class:`InlineTopic` (subscribed through
the Conductor like an agent's topic), and :class:`InlineConsumer`, Faust's aiokafka consumer
with a delivery loop of ours, calls the topic's handler for each fetched record (in the
consumer's task, one record at a time, in partition order); there is no queue, stream or
agent behind it. It relies on Faust internals, fingerprinted in
:mod:`engine.stream.fastpath`: a worker on internals it does not know runs ``agents``.

Delivery is at-least-once, and we do not rely on Faust's automatic acks for it. Faust commits,
per partition, only the run of consecutive acked offsets (every ``broker_commit_interval``,
after ``producer.flush()``); but aiokafka's ``flush()`` only waits for the in-flight batches to
*finish*, failed or not. So :class:`Dispatcher` acks a record (``Message.ack``, the call a
Faust stream makes) only when every record it produced for it was acknowledged by the broker:
done-callbacks on the send futures and a per-record countdown, no round trip per record, sends
stay pipelined. An unacknowledged send holds back the commit of its input and everything after
it. A send that fails for good stops the worker (exit code 1) without acking: its input is read
again after the restart, which is what at-least-once asks for.

Like a Faust stream, the handler registers each record as pending with the consumer before
working on it, so a rebalance or a stop (``stream_wait_empty``) waits for its outputs to be
acknowledged before committing; and it skips records fetched before a rebalance (an older
consumer generation, or flow stopped): those are not acked, and Faust seeks every assigned
partition back to its committed offset before resuming, so they are read again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiokafka
import faust
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import aiokafka as faust_kafka

from engine.core.models import SourcePosition, Stream
from engine.core.processor import Outcome, RecordProcessor
from engine.kafka_io import KeyPartitioner
from engine.metrics import WorkerMetrics
from engine.settings import Settings
from engine.stream.autohunt import AutoHunter
from engine.stream.exposures import ExposureReader
from engine.stream.follower import IndicatorFollower
from engine.stream.held import held_events, held_topic

log = logging.getLogger(__name__)

FatalHandler = Callable[[BaseException], None]
RecordHandler = Callable[[Any], Awaitable[None]]
LAG_REFRESH_SECONDS = 2.0  # scamwatch_consumer_lag: fresh enough for a 5-15 s scrape


class _Handled:
    """Stands in for a topic's queue: the Conductor puts each record it delivered here,
    and by then the handler has already dealt with it."""

    def full(self) -> bool:
        return False

    def put_nowait_enhanced(self, value: Any, **_: Any) -> None:
        pass

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0


class InlineTopic(faust.Topic):
    """An input topic whose records go straight to ``handler`` (no queue, no stream, no
    agent). Registered with the Conductor, which subscribes the consumer to it.
    :class:`InlineConsumer` calls ``handler`` itself; should a record come through the
    Conductor instead, it awaits ``topic.decode(message)`` and puts the result on
    ``topic.queue``: here ``decode`` is the handler, the queue a sink."""

    def __init__(self, app: faust.App, name: str, handler: RecordHandler) -> None:
        self.handler = handler
        self._handled = _Handled()
        super().__init__(app, topics=[name], acks=True)

    def _compile_decode(self) -> None:
        handler = self.handler

        async def handle(message: Any, *, propagate: bool = False) -> None:
            await handler(message)

        self.decode = handle  # type: ignore[assignment]

    @property
    def queue(self) -> Any:
        return self._handled


class _Delivery:
    """One input record in its partition's line: acked once its outputs (``count``, none for a
    clean record) are acknowledged and every earlier record of the partition was acked."""

    __slots__ = ("_dispatcher", "_left", "consumer", "event", "failed", "key", "message", "source")

    def __init__(
        self,
        dispatcher: Dispatcher,
        message: Any,
        consumer: Any,
        source: SourcePosition,
        count: int,
        event: Any,
        key: tuple[str, int],
    ) -> None:
        self._dispatcher = dispatcher
        self.message = message
        self.consumer = consumer
        self.source = source
        self._left = count
        self.failed = False
        self.event = event
        self.key = key

    @property
    def ready(self) -> bool:
        return self._left == 0 and not self.failed

    def fail(self) -> None:
        self.failed = True

    def ack(self) -> None:
        if self.event is None:
            self.message.ack(self.consumer)
        else:
            self.event.ack()

    def done(self, fut: asyncio.Future[Any]) -> None:
        if self.failed:
            return
        if fut.cancelled():
            self.failed = True  # shutting down: not acked, so read again after the restart
            self._dispatcher.abandon()
            return
        exc = fut.exception()
        if exc is not None:
            self.failed = True
            self._dispatcher.fatal(self.source, exc, "the broker did not acknowledge an output")
            return
        self._left -= 1
        if self._left == 0:
            self._dispatcher.release(self.key)


class Dispatcher:
    """Processes one input record, records its metrics, sends its outputs, acks on delivery.

    Acks are in offset order per partition: a record is acked only once every earlier record of
    its partition was. Faust 0.15's commit takes the run of acked offsets and passes one unacked
    offset right after the committed one (``Consumer._new_offset``: a head gap of exactly one
    is taken for a compacted offset, faust-streaming#606), so an out-of-order ack of the next
    record would commit a record still in flight, or one whose send failed."""

    def __init__(
        self, processor: RecordProcessor, metrics: WorkerMetrics, on_fatal: FatalHandler
    ) -> None:
        self._processor = processor
        self.metrics = metrics
        self.on_fatal = on_fatal
        self._failed = False
        # per input partition, its records not acked yet, oldest first (the head is in flight)
        self._lines: dict[tuple[str, int], deque[_Delivery]] = {}
        # per input partition, the offset of the last record handed to handle() (for the lag)
        self._handled: dict[tuple[str, int], int] = {}
        # label lookups cost microseconds: the hot path keeps the children it has seen
        self._events = _Children(metrics.events)
        self._latency = _Children(metrics.latency)
        self._alerts = _Children(metrics.alerts)
        self._deadletters = _Children(metrics.deadletters)
        self._suppressed = _Children(metrics.alerts_suppressed)
        self._sightings = _Children(metrics.sightings)
        self._unparsed = _Children(metrics.unparsed)

    @property
    def failed(self) -> bool:
        """True once a record failed for good (the worker is stopping with exit code 1)."""
        return self._failed

    async def handle(self, app: Any, stream: Stream, message: Any, event: Any = None) -> None:
        """Handle one record (a Faust ``Message``); it is acked once it needs nothing more (its
        outputs delivered, every earlier record of its partition acked): with ``event.ack()``
        when it came as a stream's ``event`` (the agents path), else ``message.ack(consumer)``.
        """
        consumer = app.consumer
        key = (message.topic, message.partition)
        line = self._lines.get(key)
        if self._failed or (line and line[0].failed):
            # stopping, or behind a record that is never acked: not acked either (read again
            # after the restart), and not pending, so the stop does not wait for it
            consumer.unacked.discard(message)
            return
        self._handled[key] = message.offset
        source = SourcePosition(message.topic, message.partition, message.offset)
        try:
            outcome = self._processor.process(stream, message.value, message.key, source)
            self._observe(outcome)
        except Exception as exc:
            # process() returns an outcome for any input; reaching this is a bug, and a
            # record left unacked would silently hold back every later commit: stop instead
            log.exception("unexpected failure handling %s", source.as_dict())
            self._queue(_Delivery(self, message, consumer, source, 0, event, key)).fail()
            self.fatal(source, exc, "handling failed unexpectedly")
            return
        outputs = outcome.outputs
        if not outputs:
            if not line:
                if event is None:
                    message.ack(consumer)
                else:
                    event.ack()
            else:  # acked when the records before it are
                line.append(_Delivery(self, message, consumer, source, 0, event, key))
            return
        delivery = self._queue(_Delivery(self, message, consumer, source, len(outputs), event, key))
        send = app.producer.send
        try:
            for out in outputs:
                # returns once the record is queued in the producer, not when it is acked
                fut = await send(out.topic, out.key, out.value, None, None, None)
                fut.add_done_callback(delivery.done)
        except Exception as exc:
            delivery.fail()
            self.fatal(source, exc, "the producer refused an output")
        except BaseException:
            delivery.fail()  # cancelled (stopping): read again after the restart
            self.abandon()
            raise

    def last_handled(self, topic: str, partition: int) -> int | None:
        """The offset of the last record of the partition this worker handled since it was
        assigned (None: none yet)."""
        return self._handled.get((topic, partition))

    def forget(self, partitions: Iterable[Any]) -> None:
        """Revoked partitions: their offsets are another worker's now (or sought back)."""
        for tp in partitions:
            self._handled.pop((tp.topic, tp.partition), None)

    def _queue(self, delivery: _Delivery) -> _Delivery:
        line = self._lines.get(delivery.key)
        if line is None:
            line = self._lines[delivery.key] = deque()
        line.append(delivery)
        return delivery

    def release(self, key: tuple[str, int]) -> None:
        """Ack the records at the head of ``key``'s line that need nothing more."""
        line = self._lines[key]
        while line and line[0].ready:
            line.popleft().ack()

    def abandon(self) -> None:
        """Drop every record that will never be acked (a failed one and those behind it in its
        partition) from the consumer's pending set, so a stop (``wait_empty``) does not wait for
        them; they are not acked, hence not committed, and read again after the restart."""
        for line in self._lines.values():
            stuck = False
            for delivery in line:
                stuck = stuck or delivery.failed
                if stuck:
                    delivery.consumer.unacked.discard(delivery.message)

    def fatal(self, source: SourcePosition, exc: BaseException, what: str) -> None:
        self.metrics.send_failures.inc()
        self.abandon()
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
        stream = outcome.stream.value
        self._events[stream, outcome.kind].inc()
        if outcome.latency_s is not None:
            self._latency[stream].observe(outcome.latency_s)
        for rule_severity in outcome.alerts:
            self._alerts[rule_severity].inc()
        if outcome.reason is not None:
            self._deadletters[stream, outcome.reason].inc()
        for rule in outcome.suppressed:
            self._suppressed[rule].inc()
        for kind in outcome.sightings:
            self._sightings[kind].inc()
        for field in outcome.unparsed:
            self._unparsed[stream, field].inc()


class _Children(dict[Any, Any]):
    """A metric's children by their label values (a tuple in the metric's label order, or
    the one value): each made by ``labels()`` on first use, then a dict lookup."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self._metric = metric

    def __missing__(self, key: Any) -> Any:
        values = key if isinstance(key, tuple) else (key,)
        child = self[key] = self._metric.labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class FetchTuning:
    """What a fetch asks the broker to gather before answering (``fetch.min.bytes``), and the
    longest it may wait for it (``fetch.max.wait.ms``)."""

    min_bytes: int
    max_wait_ms: int

    @classmethod
    def of(cls, settings: Settings) -> FetchTuning:
        return cls(settings.worker.fetch_min_bytes, settings.worker.fetch_max_wait_ms)


def tune_fetch(consumer: aiokafka.AIOKafkaConsumer, fetch: FetchTuning) -> None:
    """Set the fetch tuning of an aiokafka consumer built but not started, where its
    constructor keeps what ``fetch_min_bytes=``/``fetch_max_wait_ms=`` give it (``start()``
    builds its fetcher from them). Faust builds the consumer with Kafka's 1 byte (answer at
    once) and passes no such argument, so this is the only way in; a consumer already
    fetching, or one that keeps them elsewhere, is refused rather than left untuned."""
    state = vars(consumer)
    if state.get("_fetcher") is not None:
        raise RuntimeError("tune_fetch: the consumer is already started")
    tuned = {"_fetch_min_bytes": fetch.min_bytes, "_fetch_max_wait_ms": fetch.max_wait_ms}
    missing = [name for name in tuned if name not in state]
    if missing:  # checked before anything is set: refused whole, never half-tuned
        raise RuntimeError(f"tune_fetch: aiokafka's consumer keeps no {', '.join(missing)}")
    state.update(tuned)


class InlineConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, its aiokafka consumer tuned by the app's :class:`FetchTuning`.

    Measured with bench_pipeline's inputs offered live at 2,700 events/s (stateful side off):
    Faust's consumer (1 byte, up to 1.5 s) had the broker answer each fetch at once with the
    few records that had arrived, and this thread alone used ~0.23 cores refetching; the
    worker used ~280 µs of CPU per record against ~150 µs on pre-filled topics. With 64 KiB
    or 20 ms, ~195 µs."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer: aiokafka.AIOKafkaConsumer = super()._create_worker_consumer(transport)
        fetch = getattr(self.consumer.app, "fetch", None)
        if fetch is not None:
            tune_fetch(consumer, fetch)
        return consumer


class InlineConsumer(faust_kafka.Consumer):
    """Faust's aiokafka consumer with its own delivery loop.

    Faust's loop hands each record to the Conductor's callback, racing it against the
    consumer's stop and flow events with ``Service.wait_first``: four tasks and an
    ``asyncio.wait`` per record, which cost more than everything else a worker does. Here a
    record of an :class:`InlineTopic` goes straight to the topic's handler
    (:func:`record_handler`), awaited directly; records of other topics (none in this app)
    still go through the Conductor. The bookkeeping is Faust's: read offsets (a record
    below the read offset of its partition was delivered already), gaps in the offsets (so
    commits can pass them) and ``broker_commit_every``. What the Conductor does per record
    and the handler does not need: waiting on flow control (the handler skips a record read
    while the flow is stopped, as stale: it is read again from the committed offset) and
    on the producer buffer (only tables fill it; this app has none). A stop cancels the
    Fetcher's task, so a record being handled is left unacked and read again after the
    restart.
    """

    def _new_consumer_thread(self) -> InlineConsumerThread:
        return InlineConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - via Kafka
        callback = self.callback
        inline = {
            name: topic.handler
            for topic in self.app.topics
            if isinstance(topic, InlineTopic)
            for name in topic.topics
        }
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        sleep = asyncio.sleep
        since_yield = 0
        stopped_errors: tuple[type[BaseException], ...] = (
            asyncio.CancelledError,
            *self.consumer_stopped_errors,
        )
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await sleep(0)  # getmany may return at once, again and again
                if self.should_stop:
                    await sleep(0.05)  # stopping: the Fetcher's task is about to end
                    continue
                async for tp, message in self.getmany(timeout=1.0):
                    since_yield += 1
                    if since_yield >= 100:  # let the rest of the worker run now and then
                        since_yield = 0
                        await sleep(0)
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # read already (the partition was sought back)
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        # offsets with no record (compaction, transaction markers): acked
                        # as a gap, or commits would stop there
                        await self._add_gap(tp, last + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    handler = inline.get(message.topic)
                    if handler is None:
                        await callback(message)
                    else:
                        message.incref()  # one reader: its ack is the final one
                        await handler(message)
                    read_offset[tp] = offset
        except stopped_errors:
            if self.transport.app.should_stop:
                return  # stopping: nothing to report
            raise
        except Exception as exc:
            log.exception("delivering records failed: %r", exc)
            raise


class InlineTransport(faust_kafka.Transport):
    """Faust's aiokafka transport, consuming with :class:`InlineConsumer`."""

    Consumer = InlineConsumer


class ScamwatchApp(faust.App):
    """A Faust app whose agents' input queues are not emptied when the flow resumes.

    Faust's channels ask for queues cleared on ``flow_control.resume()``, and a rebalance's
    recovery resumes the flow more than once (before reading the changelogs of the discover
    table, and again once the input partitions are resumed and sought): the records of the
    new generation fetched in between, already past the consumer's position, were dropped
    from the agent's queue unprocessed and never read again (seen: the first record after a
    take-over, in 2 of 25 runs of the agents scale-out test). Kept, a record of an older
    generation is skipped by the stream (read again after Faust's seek to the committed
    offset) and one of the current generation is processed. Public API only (the app's
    ``FlowControlQueue`` factory); tests/unit/stream/test_held.py holds Faust to it."""

    def FlowControlQueue(self, maxsize: int | None = None, *, clear_on_resume: bool = False) -> Any:
        return super().FlowControlQueue(maxsize, clear_on_resume=False)


class WorkerApp(ScamwatchApp):
    """A Faust app whose consumer is an :class:`InlineConsumer` (the rest is Faust's), its
    fetches tuned by ``fetch`` (None: as Faust makes them)."""

    fetch: FetchTuning | None = None

    def _new_transport(self) -> Any:
        return InlineTransport(self.conf.broker_consumer, self)


def record_handler(app: faust.App, dispatcher: Dispatcher, stream: Stream) -> RecordHandler:
    """What is called for each record of ``stream``'s topic: what a Faust stream does
    before yielding an event (skip stale records, register it as pending), then
    :meth:`Dispatcher.handle`."""
    flow_control = app.flow_control

    async def on_record(message: Any) -> None:
        if not flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            # fetched before a rebalance: Faust seeks back to the committed offset before
            # resuming, so it is read again; acking it could commit it unprocessed
            return
        if not message.tracked:
            message.tracked = True
            # pending until acked: a rebalance or stop waits for it before committing
            app.consumer.unacked.add(message)
        await dispatcher.handle(app, stream, message)

    return on_record


def input_agent(app: faust.App, dispatcher: Dispatcher, stream: Stream, topic: str) -> None:
    """The ``agents`` data path for one input topic: a plain Faust agent on Faust's public API.

    The stream's automatic acks are off (``noack``): an event is acked by the
    :class:`Dispatcher`, with ``event.ack()``, only once the broker acknowledged its outputs,
    as on the inline path. Until then it is pending with the consumer (the stream tracks it),
    so a stop or a rebalance waits for it and a commit never passes it. A record the stream
    skips as fetched before a rebalance is neither processed nor acked (:class:`HeldSchema`):
    it is read again after the rebalance."""
    handle = dispatcher.handle

    async def consume(records: Any) -> None:
        async for event in held_events(records):
            await handle(app, stream, event.message, event)

    app.agent(held_topic(app, topic), name=f"scamwatch.{stream.value}")(consume)


# how often the consumer refreshes metadata: a subscribed topic created after the worker
# started (by a partner's client, or by an operator) is consumed within this and a rejoin
METADATA_MAX_AGE_MS = 2000


def create_app(
    settings: Settings,
    *,
    dispatcher: Dispatcher,
    follower: IndicatorFollower,
    web_port: int,
    datadir: Path,
    data_path: str = "inline",
    exposures: ExposureReader | None = None,
    hunter: AutoHunter | None = None,
) -> faust.App:
    """A Faust app consuming ``calls`` and ``web`` as raw bytes (decoding is ours: Faust's own
    deserializer logs and drops what it cannot decode), through :class:`InlineTopic` on the
    ``inline`` data path, through :func:`input_agent` on the ``agents`` path."""
    app_class = WorkerApp if data_path == "inline" else ScamwatchApp
    app: faust.App = app_class(
        settings.worker.app_id,
        broker=settings.kafka.broker_urls,
        broker_credentials=settings.kafka.faust_credentials(),
        autodiscover=False,
        datadir=str(datadir),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_port=web_port,
        web_bind=settings.worker.web_bind,
        # the assignor's leader topic is only for tables, which this app has none of
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Kafka's key → partition with the hash in C (aiokafka's is pure Python)
        producer_partitioner=KeyPartitioner(),
        # a few ms of batching: one produce request per batch, not per alert
        producer_linger=settings.worker.producer_linger_seconds,
        # outputs are capped at max_output_bytes; room for the key and the batch header
        producer_max_request_size=settings.processing.max_output_bytes + 65_536,
        # on stop and on rebalance, wait until started events are acked, then commit
        stream_wait_empty=True,
        broker_commit_interval=settings.worker.commit_interval_seconds,
        broker_session_timeout=settings.worker.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker.session_timeout_seconds / 4),
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )
    if isinstance(app, WorkerApp):
        app.fetch = FetchTuning.of(settings)

    for stream, name in ((Stream.CALLS, settings.topics.calls), (Stream.WEB, settings.topics.web)):
        if data_path == "inline":
            # subscribed through the Conductor, as an agent's topic would be
            app.topics.add(InlineTopic(app, name, record_handler(app, dispatcher, stream)))
        else:
            input_agent(app, dispatcher, stream, name)

    async def follow() -> None:
        await follower.run()

    app.task(follow)
    if exposures is not None:
        reader = exposures

        async def follow_exposures() -> None:
            await reader.follow()

        app.task(follow_exposures)
    if hunter is not None:
        auto = hunter
        follower.listeners.append(auto.on_version)

        async def hunt() -> None:
            await auto.run()

        app.task(hunt)
    inputs = {settings.topics.calls, settings.topics.web}

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        count = sum(1 for tp in assigned if tp.topic in inputs)
        dispatcher.metrics.assigned_partitions.set(count)
        log.info("assigned %d input partitions: %s", count, sorted(map(tuple, assigned)))
        if hunter is not None:
            hunter.assigned(assigned)

    app.on_partitions_assigned.connect(on_assigned)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        dispatcher.forget(revoked)
        if hunter is not None:
            hunter.revoked(revoked)

    app.on_partitions_revoked.connect(on_revoked)
    lag_labels: set[tuple[str, str]] = set()
    lag_failed: list[str] = []  # the failure already logged (a timer that raises stops Faust)

    async def refresh_lag() -> None:
        lag = dispatcher.metrics.consumer_lag
        try:
            got = await input_lag(app, inputs, dispatcher)
        except Exception as exc:
            if repr(exc) not in lag_failed:
                lag_failed.append(repr(exc))
                log.warning("scamwatch_consumer_lag not refreshed: %r", exc, exc_info=True)
            return
        current = {(tp.topic, str(tp.partition)): n for tp, n in got.items()}
        for labels in lag_labels - current.keys():  # revoked: no stale series
            dispatcher.metrics.drop_lag(*labels)
        for labels, n in current.items():
            lag.labels(*labels).set(n)
        lag_labels.clear()
        lag_labels.update(current)

    app.timer(LAG_REFRESH_SECONDS)(refresh_lag)
    return app


async def input_lag(app: faust.App, topics: set[str], dispatcher: Dispatcher) -> dict[Any, int]:
    """Per assigned partition of ``topics``: its high watermark (as of the last fetch) minus
    the next offset to process: after the last one the :class:`Dispatcher` handled, or, none
    handled since the assignment, the consumer's position (records fetched and not handled
    yet are not counted then). Nothing on the wire, and no consumer internals (the agents
    path runs where they are unknown)."""
    consumer: Any = app.consumer
    try:
        assignment = consumer.assignment()
    except ConsumerNotStarted:
        return {}
    lag: dict[Any, int] = {}
    for tp in assignment:
        if tp.topic not in topics:
            continue
        try:
            highwater = consumer.highwater(tp)
        except AssertionError:
            # revoked since assignment() was read: the consumer's thread rebalances on its
            # own (aiokafka asserts the partition is still assigned), so skip it this time
            continue
        if highwater is None:
            continue  # nothing fetched from it yet
        last = dispatcher.last_handled(tp.topic, tp.partition)
        if last is not None:
            upcoming = last + 1
        else:
            try:
                upcoming = await consumer.position(tp)
            except Exception:  # revoked meanwhile (a rebalance): no lag to report for it
                continue
        lag[tp] = max(0, highwater - (upcoming or 0))
    return lag
