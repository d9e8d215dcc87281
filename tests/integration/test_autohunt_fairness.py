"""An automatic hunt at a bounded rate reads every partition in turn, on the real Kafka.

aiokafka's ``getmany`` over several partitions drains its buffered fetches in the order
they arrived, and one fetch of the hunt's consumer holds up to 4 MiB of a partition: at
``SCAMWATCH_RETROHUNT_RATE``, one partition's fetch took longer to read than the stall time
while the others waited, and the hunt dropped them unhunted ("no records for 30 s"; found by
``bench_pipeline.py``'s ``hunt_running`` row: 200k retained events, both ``calls``
partitions dropped). Here two partitions of 1,200 calls each fit in one fetch apiece, read
at 400 events/s (3 s each, one after the other) with a stall time of 1 s: both must be
hunted through the new version, every call alerted once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition

from engine.core.models import Indicator, IndicatorType, Stream
from engine.metrics import WorkerMetrics
from engine.settings import load_settings
from engine.store.memory import MemoryStore
from engine.stream.autohunt import AutoHunter, MemoryHuntLedger
from tests.integration.worker_support import Topics, call_event, read_topic, topics_fixture

PARTITIONS = 2
PER_PARTITION = 1_200
RATE = 400
SCAM_NUMBER = "+18005550199"

topics = topics_fixture(PARTITIONS)


async def _fill(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                call_event(p * PER_PARTITION + i, callee=SCAM_NUMBER),
                partition=p,
            )
            for p in range(PARTITIONS)
            for i in range(PER_PARTITION)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _until(check: Callable[[], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.05)


def test_a_rate_bounded_hunt_reads_each_partition_in_turn(
    topics: Topics, kafka_bootstrap: str
) -> None:
    asyncio.run(_fill(kafka_bootstrap, topics.calls))
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap},
        worker={"retrohunt_seconds": 3600, "retrohunt_rate": RATE, "app_id": topics.app_id},
        topics={"calls": topics.calls, "web": topics.web, "alerts": topics.alerts},
    )
    store = MemoryStore()
    ledger = MemoryHuntLedger()
    metrics = WorkerMetrics()
    in_use = [store.version()]
    hunter = AutoHunter(
        settings,
        store=store,
        ledger=ledger,
        metrics=metrics,
        last_handled=lambda _topic, _partition: PER_PARTITION - 1,  # all matched live
        version=lambda: in_use[0],
        topics={topics.calls: Stream.CALLS},
    )
    hunter.stall_seconds = 1.0
    partitions = [(topics.calls, p) for p in range(PARTITIONS)]

    async def go() -> None:
        task = asyncio.create_task(hunter.run())
        try:
            hunter.assigned([TopicPartition(*tp) for tp in partitions])
            await _until(lambda: all(tp in hunter.hunted for tp in partitions), "recovered", 30)
            store.upsert([Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("t",))])
            in_use[0] = store.version()
            hunter.on_version(in_use[0])
            await _until(
                lambda: all(v == in_use[0] for v in ledger.get(partitions).values()),
                f"both partitions hunted through v{in_use[0]} (ledger {ledger.get(partitions)})",
                60,
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    expected = {f"c{i}" for i in range(PARTITIONS * PER_PARTITION)}
    got = asyncio.run(
        read_topic(kafka_bootstrap, topics.alerts, until=lambda r: len(r) >= len(expected))
    )
    ids = [orjson.loads(r.value)["event_id"] for r in got]
    assert sorted(ids) == sorted(expected)  # each call alerted once, none left out
    hunted = sum(
        s.value
        for m in metrics.hunt_events.collect()
        for s in m.samples
        if s.name == "scamwatch_hunt_events_total"
    )
    assert hunted == len(expected)
