"""A send the broker refuses for good stops the worker (exit 1) without committing the input
behind it, so the restart reads it again: at-least-once, even when the alerts topic fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Topics,
    WorkerProcess,
    call_event,
    create_topics,
    delete_topics,
    group_lag,
    produce,
    read_topic,
)

PARTITIONS = 4


def refusing_alerts(bootstrap: str, name: str, partitions: int) -> Iterator[Topics]:
    t = Topics(name)

    async def create() -> None:
        await create_topics(bootstrap, [t.calls, t.web, t.deadletter], partitions)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:  # an alerts topic that refuses every alert (they are bigger than this)
            await admin.create_topics(
                [NewTopic(t.alerts, partitions, 1, topic_configs={"max.message.bytes": "300"})]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    yield t
    asyncio.run(delete_topics(bootstrap, t.made))


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Iterator[Topics]:
    yield from refusing_alerts(kafka_bootstrap, unique_name, 1)


@pytest.fixture
def wide_topics(kafka_bootstrap: str, unique_name: str) -> Iterator[Topics]:
    yield from refusing_alerts(kafka_bootstrap, unique_name, PARTITIONS)


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_refused_alert_stops_the_worker_without_committing_its_input(
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    topics: Topics,
    tmp_path: Path,
    data_path: str,
) -> None:
    RedisStore.from_url(redis_url, prefix=key_prefix).upsert(
        [Indicator(IndicatorType.PHONE, "+18005550199", sources=("test",))]
    )
    scam_at = 20  # offset of the one scam call among clean ones
    records = [
        (b"p1:s1", call_event(i, callee="+18005550199" if i == scam_at else "+12025550111"))
        for i in range(60)
    ]
    asyncio.run(produce(kafka_bootstrap, topics.calls, records))
    worker = WorkerProcess(topics, key_prefix, tmp_path, data_path=data_path).start()
    try:
        assert worker.proc is not None
        code = worker.proc.wait(timeout=120)
        assert code == 1, worker.log_tail()
        assert "did not acknowledge" in worker.log_tail(400)
        # nothing at or after the refused alert's input is committed (the worker is gone,
        # so the group's offsets are final)
        lag = asyncio.run(group_lag(kafka_bootstrap, topics.app_id, [topics.calls]))
        assert lag[f"{topics.calls}:0"] >= len(records) - scam_at, lag
    finally:
        worker.kill()


async def produce_to(
    bootstrap: str, topic: str, records: list[tuple[int, bytes]]
) -> list[tuple[int, int]]:
    """Each value to its partition; their (partition, offset)s, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, partition=p) for p, value in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*sent)]
    finally:
        await producer.stop()


async def accept_alerts(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "1048576"})]
        )
    finally:
        await admin.close()


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_refused_alert_among_many_in_flight_outputs_stops_in_bounded_time(
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    wide_topics: Topics,
    tmp_path: Path,
    data_path: str,
) -> None:
    # thousands of dead letters in flight on every partition when the one alert is refused:
    # the stop waits for them (not for the refused record), commits, exits 1, and the
    # restart reads the refused record again
    RedisStore.from_url(redis_url, prefix=key_prefix).upsert(
        [Indicator(IndicatorType.PHONE, "+18005550199", sources=("test",))]
    )
    per_partition, scam_at = 1500, 700
    records = [
        (p, call_event(i, callee="+18005550199") if (p, i) == (1, scam_at) else b"{broken%d" % i)
        for i in range(per_partition)
        for p in range(PARTITIONS)
    ]
    positions = asyncio.run(produce_to(kafka_bootstrap, wide_topics.calls, records))
    assert positions[scam_at * PARTITIONS + 1] == (1, scam_at)
    worker = WorkerProcess(wide_topics, key_prefix, tmp_path, data_path=data_path).start()
    try:
        assert worker.proc is not None
        code = worker.proc.wait(timeout=120)
        log = worker.log_tail(100_000)
        assert code == 1, worker.log_tail()
        assert "did not acknowledge" in log
        assert "exiting now" not in log, worker.log_tail()  # the stop finished, no watchdog
        # its last commit went out before the consumer left the group (after Worker.crash the
        # consumer's thread left first, and a commit asked of it then could wait forever)
        assert log.rindex("Wait for streams") < log.index("LeaveGroup"), worker.log_tail()
        lag = asyncio.run(group_lag(kafka_bootstrap, wide_topics.app_id, [wide_topics.calls]))
        assert lag[f"{wide_topics.calls}:1"] >= per_partition - scam_at, lag
    finally:
        worker.kill()

    asyncio.run(accept_alerts(kafka_bootstrap, wide_topics.alerts))
    again = WorkerProcess(wide_topics, key_prefix, tmp_path, data_path=data_path).start()
    try:
        alerts = asyncio.run(
            read_topic(
                kafka_bootstrap,
                wide_topics.alerts,
                until=lambda r: any(a.json()["event_id"] == f"c{scam_at}" for a in r),
                within=120,
            )
        )
        assert [a.json()["event_id"] for a in alerts] == [f"c{scam_at}"], again.log_tail()
    finally:
        assert again.stop() == 0, again.log_tail()
