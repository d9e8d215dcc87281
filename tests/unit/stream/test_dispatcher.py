"""Ack-after-delivery, without Kafka: an input record is acked only once every record produced
for it is acknowledged; a failed send never acks and stops the worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from engine.core.journey import ExposureTable
from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, Stream
from engine.core.processor import Protection, RecordProcessor
from engine.core.suppression import SuppressionTable
from engine.metrics import WorkerMetrics
from engine.stream.app import Dispatcher, record_handler

SNAPSHOT = IndicatorSnapshot(
    version=1, indicators=(Indicator(IndicatorType.PHONE, "+18005550199", sources=("f",)),)
)


@dataclass(eq=False)
class FakeMessage:
    """A Faust ``Message`` as the dispatcher uses it: acked through the app's consumer."""

    value: bytes
    key: bytes | None = b"k"
    topic: str = "calls"
    partition: int = 0
    offset: int = 0
    generation_id: int = 1
    tracked: bool = False
    acks: int = 0

    def ack(self, consumer: object) -> bool:
        assert isinstance(consumer, FakeConsumer)  # through the app's consumer, as Faust does
        self.acks += 1
        return True


@dataclass
class FakeConsumer:
    """Records pending acks, as Faust's consumer does (a rebalance or stop waits for them)."""

    unacked: set[FakeMessage] = field(default_factory=set)


@dataclass
class FakeFlowControl:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class FakeProducer:
    """Queues sends; the test decides when (and how) the broker answers."""

    pending: list[asyncio.Future[None]] = field(default_factory=list)
    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes, *_: Any) -> Any:
        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut


@dataclass
class FakeApp:
    producer: FakeProducer = field(default_factory=FakeProducer)
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlowControl = field(default_factory=FakeFlowControl)
    consumer_generation_id: int = 1


def setup() -> tuple[Dispatcher, FakeApp, list[BaseException], WorkerMetrics]:
    matcher = Matcher.build(SNAPSHOT)
    metrics = WorkerMetrics()
    fatal: list[BaseException] = []
    processor = RecordProcessor(matcher=lambda: matcher, alerts_topic="a", deadletter_topic="d")
    return Dispatcher(processor, metrics, on_fatal=fatal.append), FakeApp(), fatal, metrics


def call(callee: str, **fields: Any) -> bytes:
    record = {
        "event_id": "e",
        "ts": 1_764_000_000_000,
        "partner_id": "p",
        "caller": "x",
        "callee": callee,
    }
    return orjson.dumps({**record, **fields})


async def test_clean_record_is_acked_at_once() -> None:
    dispatcher, app, fatal, metrics = setup()
    message = FakeMessage(call("+12025550111"))
    await dispatcher.handle(app, Stream.CALLS, message)
    assert message.acks == 1
    assert app.producer.sent == []
    assert fatal == []
    assert (
        metrics.registry.get_sample_value(
            "scamwatch_events_total", {"stream": "calls", "outcome": "clean"}
        )
        == 1
    )


async def test_alert_record_is_acked_only_after_the_broker_acknowledges() -> None:
    dispatcher, app, fatal, _ = setup()
    message = FakeMessage(call("+18005550199"))
    await dispatcher.handle(app, Stream.CALLS, message)
    assert [t for t, _, _ in app.producer.sent] == ["a"]
    await asyncio.sleep(0)
    assert message.acks == 0  # sent, not yet acknowledged
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 1
    assert fatal == []


async def test_dead_letter_is_acked_after_delivery_too() -> None:
    dispatcher, app, _, _ = setup()
    message = FakeMessage(b"{broken", key=b"in")
    await dispatcher.handle(app, Stream.CALLS, message)
    assert [(t, k) for t, k, _ in app.producer.sent] == [("d", b"in")]
    assert message.acks == 0
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 1


async def test_failed_send_never_acks_and_stops_the_worker() -> None:
    dispatcher, app, fatal, metrics = setup()
    message = FakeMessage(call("+18005550199"))
    await dispatcher.handle(app, Stream.CALLS, message)
    app.producer.pending[0].set_exception(RuntimeError("broker said no"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 0
    assert [str(e) for e in fatal] == ["broker said no"]
    assert metrics.registry.get_sample_value("scamwatch_send_failures_total") == 1


def two_alerts() -> tuple[Dispatcher, FakeApp, list[BaseException]]:
    snapshot = IndicatorSnapshot(
        version=1,
        indicators=(
            Indicator(IndicatorType.PHONE, "+18005550199", sources=("f",)),
            Indicator(IndicatorType.PHONE, "+18005550123", sources=("f",)),
        ),
    )
    matcher = Matcher.build(snapshot)
    fatal: list[BaseException] = []
    processor = RecordProcessor(matcher=lambda: matcher, alerts_topic="a", deadletter_topic="d")
    return Dispatcher(processor, WorkerMetrics(), on_fatal=fatal.append), FakeApp(), fatal


def call_between(caller: str, callee: str) -> bytes:
    record = {"event_id": "e", "ts": 1_764_000_000_000, "partner_id": "p"}
    return orjson.dumps(record | {"caller": caller, "callee": callee})


async def test_record_with_two_alerts_is_acked_only_after_both_are_acknowledged() -> None:
    dispatcher, app, fatal = two_alerts()
    message = FakeMessage(call_between("+18005550123", "+18005550199"))
    await dispatcher.handle(app, Stream.CALLS, message)
    assert len(app.producer.sent) == 2
    app.producer.pending[1].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 0  # one of two acknowledged
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 1
    assert fatal == []


async def test_one_failed_send_of_two_never_acks() -> None:
    dispatcher, app, fatal = two_alerts()
    message = FakeMessage(call_between("+18005550123", "+18005550199"))
    await dispatcher.handle(app, Stream.CALLS, message)
    app.producer.pending[0].set_exception(RuntimeError("broker said no"))
    app.producer.pending[1].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 0
    assert [str(e) for e in fatal] == ["broker said no"]


async def test_cancelled_send_never_acks() -> None:
    dispatcher, app, fatal = two_alerts()
    message = FakeMessage(call_between("+18005550123", "+18005550199"))
    await dispatcher.handle(app, Stream.CALLS, message)
    app.producer.pending[0].cancel()
    app.producer.pending[1].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 0
    assert fatal == []


async def test_record_is_registered_as_pending_before_it_is_handled() -> None:
    dispatcher, app, fatal, _ = setup()
    handler = record_handler(app, dispatcher, Stream.CALLS)  # type: ignore[arg-type]
    message = FakeMessage(call("+18005550199"))
    await handler(message)
    assert message.tracked and message in app.consumer.unacked
    assert len(app.producer.sent) == 1 and message.acks == 0
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert message.acks == 1
    assert fatal == []


async def test_records_read_before_a_rebalance_are_skipped_unacked() -> None:
    # Faust seeks back to the committed offset after a rebalance: they are read again
    dispatcher, app, _, metrics = setup()
    handler = record_handler(app, dispatcher, Stream.CALLS)  # type: ignore[arg-type]
    older = FakeMessage(call("+18005550199"), generation_id=0)
    await handler(older)
    app.flow_control.active = False  # a rebalance has begun
    current = FakeMessage(call("+18005550199"), offset=1)
    await handler(current)
    for message in (older, current):
        assert message.acks == 0 and not message.tracked
    assert app.producer.sent == [] and app.consumer.unacked == set()
    assert metrics.registry.get_sample_value(
        "scamwatch_events_total", {"stream": "calls", "outcome": "matched"}
    ) in (0, None)


@dataclass(eq=False)
class FakeEvent:
    """A Faust stream ``Event`` (the agents path): acked with ``event.ack()``."""

    message: FakeMessage
    acks: int = 0

    def ack(self) -> bool:
        self.acks += 1
        return True


async def test_agents_path_acks_the_event_only_after_the_broker_acknowledges() -> None:
    dispatcher, app, fatal, _ = setup()
    event = FakeEvent(FakeMessage(call("+18005550199")))
    await dispatcher.handle(app, Stream.CALLS, event.message, event)
    assert [t for t, _, _ in app.producer.sent] == ["a"]
    await asyncio.sleep(0)
    assert event.acks == 0
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (event.acks, event.message.acks) == (1, 0)  # through the event, as Faust's API
    clean = FakeEvent(FakeMessage(call("+12025550111")))
    await dispatcher.handle(app, Stream.CALLS, clean.message, clean)
    assert (clean.acks, clean.message.acks) == (1, 0)
    assert fatal == []


async def test_agents_path_never_acks_an_event_whose_send_failed() -> None:
    dispatcher, app, fatal, _ = setup()
    event = FakeEvent(FakeMessage(b"{broken"))
    await dispatcher.handle(app, Stream.CALLS, event.message, event)
    app.producer.pending[0].set_exception(RuntimeError("broker said no"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (event.acks, event.message.acks) == (0, 0)
    assert [str(e) for e in fatal] == ["broker said no"]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_acks_follow_offset_order_within_a_partition() -> None:
    # Faust 0.15's commit passes one unacked offset after the committed one (#606): a later
    # record acked before an earlier one could commit the earlier one unprocessed
    dispatcher, app, fatal, _ = setup()
    first = FakeMessage(call("+18005550199"), offset=0)
    later = FakeMessage(call("+12025550111"), offset=1)
    elsewhere = FakeMessage(call("+12025550111"), partition=1, offset=0)
    for message in (first, later, elsewhere):
        await dispatcher.handle(app, Stream.CALLS, message)
    assert (first.acks, later.acks, elsewhere.acks) == (0, 0, 1)  # other partitions: at once
    app.producer.pending[0].set_result(None)
    await settle()
    assert (first.acks, later.acks) == (1, 1)
    last = FakeMessage(call("+12025550111"), offset=2)
    await dispatcher.handle(app, Stream.CALLS, last)
    assert last.acks == 1 and fatal == []  # nothing in flight before it any more


async def test_records_behind_a_failed_one_are_never_acked_nor_awaited() -> None:
    dispatcher, app, fatal, _ = setup()
    handler = record_handler(app, dispatcher, Stream.CALLS)  # type: ignore[arg-type]
    failing = FakeMessage(call("+18005550199"), offset=0)
    behind = FakeMessage(call("+18005550199"), offset=1)
    other = FakeMessage(call("+18005550199"), partition=1, offset=0)
    for message in (failing, behind, other):
        await handler(message)
    app.producer.pending[0].set_exception(RuntimeError("broker said no"))
    app.producer.pending[1].set_result(None)
    await settle()
    assert [str(e) for e in fatal] == ["broker said no"] and dispatcher.failed
    assert (failing.acks, behind.acks) == (0, 0)
    # the stop waits only for what can still be acked: the other partition's record
    assert app.consumer.unacked == {other}
    app.producer.pending[2].set_result(None)
    await settle()
    assert other.acks == 1
    after = FakeMessage(call("+18005550199"), offset=2)
    await handler(after)  # read while stopping: not handled, not acked, not awaited
    assert after.acks == 0 and after not in app.consumer.unacked and len(app.producer.sent) == 3


async def test_sightings_and_suppressed_alerts_are_counted_for_every_record() -> None:
    # the dispatcher keeps each label's metric child after its first use: the counts must
    # still grow with every record, per label
    evil = Indicator(IndicatorType.DOMAIN, "evil.example", sources=("f",))
    matcher = Matcher.build(replace(SNAPSHOT, indicators=(*SNAPSHOT.indicators, evil)))
    now = 1_764_000_000_000
    exposures = ExposureTable(1_800_000)
    protection = Protection(exposures, "sightings", SuppressionTable(600_000, lambda: now))
    processor = RecordProcessor(
        matcher=lambda: matcher,
        alerts_topic="a",
        deadletter_topic="d",
        clock=lambda: now,
        protection=protection,
    )
    metrics = WorkerMetrics()
    dispatcher = Dispatcher(processor, metrics, on_fatal=lambda exc: None)
    app = FakeApp()
    page = {"event_id": "w", "ts": now - 60_000, "partner_id": "p", "subscriber_id": "s1"}
    page["url"] = "https://support.evil.example/help"
    await dispatcher.handle(app, Stream.WEB, FakeMessage(orjson.dumps(page), topic="web"))
    assert len(exposures) == 1  # s1 exposed by the page's alert

    def total(name: str, **labels: str) -> float:
        value = metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    for offset in range(3):  # the same scam call three times: the 2nd and 3rd are folded
        record = call("1-800-555-0199", subscriber_id="s1")
        await dispatcher.handle(app, Stream.CALLS, FakeMessage(record, offset=offset))
    folded = {"rule": "callee_scam_number"}
    assert total("scamwatch_alerts_suppressed_total", **folded) == 2
    for offset in range(3, 7):  # an unknown number, four times: four sightings
        record = call("1-888-555-0123", subscriber_id="s1")
        await dispatcher.handle(app, Stream.CALLS, FakeMessage(record, offset=offset))
    assert total("scamwatch_sightings_total", kind="call") == 4
    assert sum(1 for topic, _, _ in app.producer.sent if topic == "sightings") == 4
