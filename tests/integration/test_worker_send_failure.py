"""A send the broker refuses for good stops the worker (exit 1) without committing the input
behind it, so the restart reads it again: at-least-once, even when the alerts topic fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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
)


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Iterator[Topics]:
    t = Topics(unique_name)

    async def create() -> None:
        await create_topics(kafka_bootstrap, [t.calls, t.web, t.deadletter])
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:  # an alerts topic that refuses every alert (they are bigger than this)
            await admin.create_topics(
                [NewTopic(t.alerts, 1, 1, topic_configs={"max.message.bytes": "300"})]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    yield t
    asyncio.run(delete_topics(kafka_bootstrap, t.all))


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
