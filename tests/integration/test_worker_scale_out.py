"""Scale-out on the real stack: two workers in one consumer group on 4-partition topics share
the partitions and together produce every expected alert; when one stops the other takes
over its partitions and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Read,
    Topics,
    WorkerProcess,
    call_event,
    group_lag,
    produce,
    read_topic,
    topics_fixture,
    web_event,
)

PARTITIONS = 4
SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"


topics = topics_fixture(PARTITIONS)


def batch(
    start: int, n: int
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], set[str]]:
    calls: list[tuple[bytes, bytes]] = []
    web: list[tuple[bytes, bytes]] = []
    expected: set[str] = set()
    for i in range(start, start + n):
        key = f"p{i % 5}:s{i % 61}".encode()  # many keys: every partition gets some
        if i % 2:
            scam = i % 3 == 0
            calls.append((key, call_event(i, callee=SCAM_NUMBER if scam else "+12025550111")))
            if scam:
                expected.add(f"c{i}")
        else:
            scam = i % 4 == 0
            web.append((key, web_event(i, host=f"x.{SCAM_DOMAIN}" if scam else "example.org")))
            if scam:
                expected.add(f"w{i}")
    return calls, web, expected


def send(
    bootstrap: str, topics: Topics, calls: list[tuple[bytes, bytes]], web: list[tuple[bytes, bytes]]
) -> None:
    async def go() -> None:
        await produce(bootstrap, topics.calls, calls)
        await produce(bootstrap, topics.web, web)

    asyncio.run(go())


def event_ids(records: list[Read]) -> set[str]:
    """The events the number and domain rules alerted on (a discovered_scam_number alert,
    raised when exposed subscribers happen to call one clean number, is the discover
    agent's: whether the exposures are read before the calls is timing)."""
    return {
        str(r.json()["event_id"])
        for r in records
        if r.json().get("rule") != "discovered_scam_number"
    }


def assigned(worker: WorkerProcess) -> float:
    return worker.metrics().get("scamwatch_assigned_partitions", 0)


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_two_workers_share_partitions_and_one_takes_over(
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    topics: Topics,
    tmp_path: Path,
    data_path: str,
) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    store.upsert(
        [
            Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",)),
            Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("test",)),
        ]
    )
    a = WorkerProcess(topics, key_prefix, tmp_path / "a", data_path=data_path).start()
    b = WorkerProcess(topics, key_prefix, tmp_path / "b", data_path=data_path).start()
    try:
        a.wait_assigned()
        b.wait_assigned()
        # both in the group: the 2 x 4 input partitions split between them
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shares = (assigned(a), assigned(b))
            if sum(shares) == 2 * PARTITIONS and min(shares) > 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"partitions not shared: {shares}\n{a.log_tail()}\n{b.log_tail()}")

        calls, web, expected = batch(0, 1200)
        send(kafka_bootstrap, topics, calls, web)
        got = asyncio.run(
            read_topic(kafka_bootstrap, topics.alerts, until=lambda r: expected <= event_ids(r))
        )
        assert event_ids(got) == expected
        processed = (
            a.metrics().total("scamwatch_events_total"),
            b.metrics().total("scamwatch_events_total"),
        )
        assert min(processed) > 0, processed  # both did part of the work
        assert sum(processed) >= len(calls) + len(web)

        assert b.stop(signal.SIGTERM) == 0
        a.wait_metric(lambda m: m["scamwatch_assigned_partitions"] == 2 * PARTITIONS)
        before = a.metrics().total("scamwatch_events_total")
        calls2, web2, expected2 = batch(5000, 1200)
        send(kafka_bootstrap, topics, calls2, web2)
        got = asyncio.run(
            read_topic(
                kafka_bootstrap, topics.alerts, until=lambda r: expected | expected2 <= event_ids(r)
            )
        )
        assert event_ids(got) == expected | expected2
        a.wait_metric(
            lambda m: m.total("scamwatch_events_total") >= before + len(calls2) + len(web2)
        )
        deadline = time.monotonic() + 60
        lag: dict[str, int] = {}
        while time.monotonic() < deadline:
            lag = asyncio.run(group_lag(kafka_bootstrap, topics.app_id, [topics.calls, topics.web]))
            if lag and not any(lag.values()):
                break
            time.sleep(0.5)
        assert lag and not any(lag.values()), lag
    finally:
        a.kill()
        b.kill()
