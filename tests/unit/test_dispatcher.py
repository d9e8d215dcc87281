"""Ack-after-delivery, without Kafka: an event is acked only once every record produced for it
is acknowledged; a failed send never acks and stops the worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorSnapshot, IndicatorType, Stream
from engine.metrics import WorkerMetrics
from engine.stream.app import Dispatcher
from engine.stream.processor import RecordProcessor

SNAPSHOT = IndicatorSnapshot(
    version=1, indicators=(Indicator(IndicatorType.PHONE, "+18005550199", sources=("f",)),)
)


@dataclass
class FakeMessage:
    value: bytes
    key: bytes | None = b"k"
    topic: str = "calls"
    partition: int = 0
    offset: int = 0


@dataclass
class FakeEvent:
    message: FakeMessage
    acks: int = 0

    def ack(self) -> bool:
        self.acks += 1
        return True


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


def setup() -> tuple[Dispatcher, FakeApp, list[BaseException], WorkerMetrics]:
    matcher = Matcher.build(SNAPSHOT)
    metrics = WorkerMetrics()
    fatal: list[BaseException] = []
    processor = RecordProcessor(matcher=lambda: matcher, alerts_topic="a", deadletter_topic="d")
    return Dispatcher(processor, metrics, on_fatal=fatal.append), FakeApp(), fatal, metrics


def call(callee: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": "e",
            "ts": 1_764_000_000_000,
            "partner_id": "p",
            "caller": "x",
            "callee": callee,
        }
    )


async def test_clean_event_is_acked_at_once() -> None:
    dispatcher, app, fatal, metrics = setup()
    event = FakeEvent(FakeMessage(call("+12025550111")))
    await dispatcher.handle(app, Stream.CALLS, event)  # type: ignore[arg-type]
    assert event.acks == 1
    assert app.producer.sent == []
    assert fatal == []
    assert (
        metrics.registry.get_sample_value(
            "scamwatch_events_total", {"stream": "calls", "outcome": "clean"}
        )
        == 1
    )


async def test_alert_event_is_acked_only_after_the_broker_acknowledges() -> None:
    dispatcher, app, fatal, _ = setup()
    event = FakeEvent(FakeMessage(call("+18005550199")))
    await dispatcher.handle(app, Stream.CALLS, event)  # type: ignore[arg-type]
    assert [t for t, _, _ in app.producer.sent] == ["a"]
    await asyncio.sleep(0)
    assert event.acks == 0  # sent, not yet acknowledged
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert event.acks == 1
    assert fatal == []


async def test_dead_letter_is_acked_after_delivery_too() -> None:
    dispatcher, app, _, _ = setup()
    event = FakeEvent(FakeMessage(b"{broken", key=b"in"))
    await dispatcher.handle(app, Stream.CALLS, event)  # type: ignore[arg-type]
    assert [(t, k) for t, k, _ in app.producer.sent] == [("d", b"in")]
    assert event.acks == 0
    app.producer.pending[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert event.acks == 1


async def test_failed_send_never_acks_and_stops_the_worker() -> None:
    dispatcher, app, fatal, metrics = setup()
    event = FakeEvent(FakeMessage(call("+18005550199")))
    await dispatcher.handle(app, Stream.CALLS, event)  # type: ignore[arg-type]
    app.producer.pending[0].set_exception(RuntimeError("broker said no"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert event.acks == 0
    assert [str(e) for e in fatal] == ["broker said no"]
    assert metrics.registry.get_sample_value("scamwatch_send_failures_total") == 1
