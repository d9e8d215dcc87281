"""Redis going away under a running worker: it keeps matching on its last snapshot, says so
(metric and one warning), and resyncs when Redis is back. Uses a redis-server of the test's
own on a free loopback port; the shared one is never touched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    OwnRedis,
    Read,
    Topics,
    WorkerProcess,
    call_event,
    produce,
    read_topic,
    topics_fixture,
)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


topics = topics_fixture(1)


def alert_ids(records: list[Read]) -> set[str]:
    return {str(r.json()["event_id"]) for r in records}


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_worker_keeps_matching_through_a_redis_outage_and_resyncs(
    kafka_bootstrap: str, topics: Topics, own_redis: OwnRedis, tmp_path: Path, data_path: str
) -> None:
    store = RedisStore.from_url(own_redis.url, prefix="scamwatch:")
    store.upsert([Indicator(IndicatorType.PHONE, "+18005550199", sources=("test",))])
    worker = WorkerProcess(
        topics,
        "scamwatch:",
        tmp_path / "worker",
        extra_env={"SCAMWATCH_REDIS_URL": own_redis.url},
        data_path=data_path,
    ).start()
    try:
        worker.wait_assigned()
        worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1)

        own_redis.kill()
        down = worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 0)
        errors_at_down = down["scamwatch_indicator_store_errors_total"]
        # several failed polls later ...
        worker.wait_metric(
            lambda m: m["scamwatch_indicator_store_errors_total"] >= errors_at_down + 3
        )
        # ... one warning for the outage, not one per poll
        assert worker.log_tail(400).count("indicator store unreachable") == 1

        # still matching on the last snapshot
        asyncio.run(
            produce(
                kafka_bootstrap, topics.calls, [(b"p1:a", call_event(1, callee="+1 800 555 0199"))]
            )
        )
        got = asyncio.run(
            read_topic(
                kafka_bootstrap, topics.alerts, until=lambda r: "c1" in alert_ids(r), within=30
            )
        )
        assert "c1" in alert_ids(got)

        own_redis.start()  # same port, same data
        worker.wait_metric(lambda m: m["scamwatch_indicator_store_up"] == 1)
        store.upsert([Indicator(IndicatorType.PHONE, "+18885550123", sources=("test",))])
        version = store.version()
        worker.wait_metric(lambda m: m["scamwatch_indicator_version"] == version)
        asyncio.run(
            produce(
                kafka_bootstrap,
                topics.calls,
                [
                    (b"p1:b", call_event(2, callee="+1 888 555 0123")),
                    (b"p1:b", call_event(3, callee="+1 800 555 0199")),
                ],
            )
        )
        got = asyncio.run(
            read_topic(
                kafka_bootstrap,
                topics.alerts,
                until=lambda r: {"c2", "c3"} <= alert_ids(r),
                within=30,
            )
        )
        assert {"c1", "c2", "c3"} <= alert_ids(got)
        assert "indicator store reachable" in worker.log_tail(400)
    finally:
        worker.kill()


def test_worker_started_while_redis_is_down_says_so_and_loads_when_it_answers(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    server = OwnRedis(tmp_path / "redis")  # not started yet: nothing on its port
    worker = WorkerProcess(
        topics,
        "scamwatch:",
        tmp_path / "worker",
        extra_env={"SCAMWATCH_REDIS_URL": server.url, "SCAMWATCH_SNAPSHOT_WAIT_SECONDS": "1"},
    ).start()
    try:
        worker.wait_assigned()
        assert worker.metrics()["scamwatch_indicator_store_up"] == 0
        assert "STARTING WITH NO INDICATORS" in worker.log_tail(400)

        server.start()
        RedisStore.from_url(server.url, prefix="scamwatch:").upsert(
            [Indicator(IndicatorType.PHONE, "+18005550199", sources=("test",))]
        )
        worker.wait_metric(
            lambda m: (
                m["scamwatch_indicator_store_up"] == 1 and m["scamwatch_indicator_version"] == 1
            )
        )
        asyncio.run(
            produce(kafka_bootstrap, topics.calls, [(b"p1:a", call_event(7, callee="8005550199"))])
        )
        got = asyncio.run(
            read_topic(
                kafka_bootstrap, topics.alerts, until=lambda r: "c7" in alert_ids(r), within=30
            )
        )
        assert "c7" in alert_ids(got)
    finally:
        worker.kill()
        server.kill()
