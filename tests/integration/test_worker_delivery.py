"""At-least-once on the real stack: a worker SIGKILLed mid-stream and restarted loses no
alert and no input; SIGTERM commits what was processed."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Topics,
    WorkerProcess,
    call_event,
    group_lag,
    produce,
    read_topic,
    topics_fixture,
)

SCAM_NUMBER = "+18005550199"


topics = topics_fixture(2)


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix=key_prefix)
    s.upsert([Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",))])
    return s


def dataset(n: int) -> tuple[list[tuple[bytes, bytes]], set[str], set[bytes]]:
    """n call events: every 3rd a scam call, every 50th not JSON; the rest clean."""
    records: list[tuple[bytes, bytes]] = []
    matched: set[str] = set()
    bad: set[bytes] = set()
    for i in range(n):
        if i % 50 == 49:
            key = f"bad-{i}".encode()
            records.append((key, b"{oops"))
            bad.add(key)
        elif i % 3 == 0:
            records.append((f"p1:s{i % 31}".encode(), call_event(i, callee=SCAM_NUMBER)))
            matched.add(f"c{i}")
        else:
            records.append((f"p1:s{i % 31}".encode(), call_event(i, callee="+12025550111")))
    return records, matched, bad


def wait_all_committed(bootstrap: str, group: str, topics: Topics, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 90
    lag: dict[str, int] = {}
    while time.monotonic() < deadline:
        lag = asyncio.run(group_lag(bootstrap, group, [topics.calls, topics.web]))
        if lag and not any(lag.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"inputs not all committed: {lag}\n{worker.log_tail()}")


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    store: RedisStore,
    key_prefix: str,
    tmp_path: Path,
    data_path: str,
) -> None:
    n = 3000
    records, matched, bad = dataset(n)
    first = WorkerProcess(topics, key_prefix, tmp_path / "w1", data_path=data_path).start()
    second: WorkerProcess | None = None
    try:
        first.wait_assigned()

        def trickle() -> None:
            async def go() -> None:
                for chunk in range(0, n, 100):
                    await produce(kafka_bootstrap, topics.calls, records[chunk : chunk + 100])
                    await asyncio.sleep(0.1)

            asyncio.run(go())

        producer = threading.Thread(target=trickle)
        producer.start()
        at_kill = first.wait_metric(lambda m: m.total("scamwatch_events_total") >= 1000, timeout=60)
        first.stop(signal.SIGKILL)
        killed_mid_stream = producer.is_alive()
        producer.join(timeout=120)
        assert killed_mid_stream, "the stream ended before the kill: nothing was tested"
        assert at_kill.total("scamwatch_events_total") < n

        second = WorkerProcess(topics, key_prefix, tmp_path / "w2", data_path=data_path).start()
        second.wait_assigned()
        wait_all_committed(kafka_bootstrap, topics.app_id, topics, second)
        assert second.metrics().total("scamwatch_events_total") > 0

        alerts = asyncio.run(
            read_topic(
                kafka_bootstrap,
                topics.alerts,
                until=lambda r: matched <= {str(a.json()["event_id"]) for a in r},
            )
        )
        seen = [str(a.json()["event_id"]) for a in alerts]
        assert set(seen) == matched  # every expected alert at least once, nothing else
        ids = [str(a.json()["alert_id"]) for a in alerts]
        # a reprocessed event yields the very same alert id (duplicates are droppable)
        assert len(set(ids)) == len(matched)
        print(f"{len(ids) - len(set(ids))} duplicate alerts after the SIGKILL")

        dead = asyncio.run(
            read_topic(
                kafka_bootstrap, topics.deadletter, until=lambda r: bad <= {d.key for d in r}
            )
        )
        assert {d.key for d in dead} == bad
        # clean inputs: no alert (checked above) and committed, which happens only after
        # they were processed (the lag is 0 on every partition)
    finally:
        first.kill()
        if second is not None:
            second.kill()


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_sigterm_stops_cleanly_and_commits_what_was_processed(
    kafka_bootstrap: str,
    topics: Topics,
    store: RedisStore,
    key_prefix: str,
    tmp_path: Path,
    data_path: str,
) -> None:
    records, matched, _ = dataset(600)
    asyncio.run(produce(kafka_bootstrap, topics.calls, records))
    # no periodic commit during the test: only the shutdown can commit
    worker = WorkerProcess(
        topics,
        key_prefix,
        tmp_path,
        extra_env={"SCAMWATCH_COMMIT_INTERVAL_SECONDS": "60"},
        data_path=data_path,
    ).start()
    try:
        worker.wait_metric(lambda m: m.total("scamwatch_events_total") >= len(records))
        lag = asyncio.run(group_lag(kafka_bootstrap, topics.app_id, [topics.calls]))
        assert sum(lag.values()) > 0  # nothing committed yet
        assert worker.stop(signal.SIGTERM) == 0
        lag = asyncio.run(group_lag(kafka_bootstrap, topics.app_id, [topics.calls, topics.web]))
        assert not any(lag.values()), lag
        alerts = asyncio.run(
            read_topic(
                kafka_bootstrap,
                topics.alerts,
                until=lambda r: matched <= {str(a.json()["event_id"]) for a in r},
            )
        )
        assert {str(a.json()["event_id"]) for a in alerts} == matched
    finally:
        worker.kill()
