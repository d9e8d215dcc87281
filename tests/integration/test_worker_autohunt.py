"""Automatic retro-hunts on the real stack: calls to a number are processed (clean) by a
worker with ``SCAMWATCH_RETROHUNT_SECONDS=3600``; then the number becomes an indicator and
the worker hunts its partitions for it: one retro alert per earlier call, nothing for the
calls matched live after it, ``scamwatch_hunt_events_total`` counting what was read. And a
worker stopped mid-hunt: the worker started after it hunts the partitions left, every call is
alerted at least once, and a repeated alert has the same id; and a worker joining the group
mid-hunt: it hunts the partitions it takes, the first keeps hunting the ones it kept."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from engine.core.models import Indicator, IndicatorType
from engine.devtools.schemas import validate
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    DATA_PATHS,
    Read,
    Topics,
    WorkerProcess,
    call_event,
    produce,
    read_topic,
    topics_fixture,
)

PARTITIONS = 4
SCAM_NUMBER = "+18005550199"
CLEAN_NUMBER = "+12025550111"


topics = topics_fixture(PARTITIONS)


def _calls(start: int, n: int) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    """``n`` calls, every other one to the scam number; the ids of those."""
    records: list[tuple[bytes, bytes]] = []
    scam: set[str] = set()
    for i in range(start, start + n):
        key = f"p1:s{i % 37}".encode()  # many keys: every partition gets some
        to_scam = i % 2 == 0
        records.append((key, call_event(i, callee=SCAM_NUMBER if to_scam else CLEAN_NUMBER)))
        if to_scam:
            scam.add(f"c{i}")
    return records, scam


def _worker(
    topics: Topics, prefix: str, tmp_path: Path, rate: int, data_path: str = "inline"
) -> WorkerProcess:
    return WorkerProcess(
        topics,
        prefix,
        tmp_path,
        data_path=data_path,
        extra_env={
            "SCAMWATCH_RETROHUNT_SECONDS": "3600",
            "SCAMWATCH_RETROHUNT_RATE": str(rate),
            "SCAMWATCH_DISCOVERY": "off",
        },
    )


def _ledger(client: redis.Redis, prefix: str, topics: Topics) -> dict[str, int]:
    raw = client.hgetall(f"{prefix}{{i}}:hunted:{topics.app_id}")
    return {k.decode(): int(v) for k, v in raw.items()}


def _wait(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


def _processed(worker: WorkerProcess, n: int) -> None:
    worker.wait_metric(lambda m: m.total("scamwatch_events_total", stream="calls") >= n, 90)


def _add_indicator(store: RedisStore) -> int:
    store.upsert([Indicator(type=IndicatorType.PHONE, value=SCAM_NUMBER, sources=("test",))])
    return store.version()


def _hunting_slowly(
    topics: Topics,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> tuple[WorkerProcess, set[str], int]:
    """400 earlier calls (every other one to the number), a worker hunting at 25 events/s
    (16 s for the 400, so what the test does next comes mid-hunt) once the number was
    added: the worker, the ids of the calls to the number and the version that added it."""
    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    before, scam_before = _calls(0, 400)
    asyncio.run(produce(kafka_bootstrap, topics.calls, before))
    first = _worker(topics, key_prefix, tmp_path / "first", rate=25).start()
    try:
        first.wait_assigned(90)
        _processed(first, len(before))
        _wait(lambda: len(_ledger(redis_client, key_prefix, topics)) == 2 * PARTITIONS, "ledger")
        version = _add_indicator(store)
        first.wait_metric(lambda m: m.total("scamwatch_hunt_events_total") >= 20, 60)
    except BaseException:
        first.kill()
        raise
    return first, scam_before, version


def _wait_hunted_through(
    client: redis.Redis, prefix: str, topics: Topics, version: int, timeout: float
) -> None:
    _wait(
        lambda: all(
            v == version for k, v in _ledger(client, prefix, topics).items() if topics.calls in k
        ),
        "every calls partition hunted through the new version",
        timeout,
    )


def _assert_each_call_hunted_with_one_id(records: list[Read], scam_before: set[str]) -> None:
    ids: dict[str, set[str]] = defaultdict(set)
    for r in records:
        doc = r.json()
        assert doc["retro"] is True
        ids[str(doc["event_id"])].add(str(doc["alert_id"]))
    assert set(ids) == scam_before  # every call to the number hunted at least once
    assert all(len(v) == 1 for v in ids.values())  # a repeat has the same id


def _alerts(bootstrap: str, topic: str, enough: int) -> list[Read]:
    return asyncio.run(read_topic(bootstrap, topic, until=lambda r: len(r) >= enough, within=90))


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_new_indicator_is_hunted_back_once_per_event_and_live_after(
    data_path: str,
    topics: Topics,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    before, scam_before = _calls(0, 80)
    asyncio.run(produce(kafka_bootstrap, topics.calls, before))
    worker = _worker(topics, key_prefix, tmp_path, rate=100_000, data_path=data_path).start()
    try:
        worker.wait_assigned(90)
        _processed(worker, len(before))
        # every input partition marked with the version it starts from (nothing to hunt)
        _wait(lambda: len(_ledger(redis_client, key_prefix, topics)) == 2 * PARTITIONS, "ledger")
        version = _add_indicator(store)

        retro = _alerts(kafka_bootstrap, topics.alerts, len(scam_before))
        docs = [r.json() for r in retro]
        assert sorted(d["event_id"] for d in docs) == sorted(scam_before)
        assert len({d["alert_id"] for d in docs}) == len(docs)  # once per event
        hunt_ids = {d["hunt"]["id"] for d in docs}  # type: ignore[index]
        assert len(hunt_ids) == 1
        for doc in docs:
            validate("alert.v1", doc)
            assert doc["retro"] is True
            assert doc["rule"] == "callee_scam_number"
        calls_ledger = {
            k: v for k, v in _ledger(redis_client, key_prefix, topics).items() if topics.calls in k
        }
        _wait(
            lambda: all(
                v == version
                for k, v in _ledger(redis_client, key_prefix, topics).items()
                if topics.calls in k
            ),
            "every calls partition hunted through the new version",
        )
        assert len(calls_ledger) == PARTITIONS
        scrape = worker.wait_metric(
            lambda m: m.total("scamwatch_hunt_events_total", stream="calls") >= len(before), 30
        )
        # exactly the records matched before the indicator: none of them twice
        assert scrape.total("scamwatch_hunt_events_total", stream="calls") == len(before)
        assert scrape.total("scamwatch_alerts_total", rule="callee_scam_number") == len(scam_before)

        # after it: matched live, not hunted
        after, scam_after = _calls(1000, 20)
        asyncio.run(produce(kafka_bootstrap, topics.calls, after))
        total = len(scam_before) + len(scam_after)
        records = _alerts(kafka_bootstrap, topics.alerts, total)
        live = [r.json() for r in records if "retro" not in r.json()]
        assert sorted(d["event_id"] for d in live) == sorted(scam_after)
        assert len(records) == total
        _processed(worker, len(before) + len(after))
        scrape = worker.metrics()
        assert scrape.total("scamwatch_hunt_events_total", stream="calls") == len(before)
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_worker_restarted_mid_hunt_the_next_one_hunts_what_was_left(
    topics: Topics,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    first, scam_before, version = _hunting_slowly(
        topics, kafka_bootstrap, redis_url, redis_client, key_prefix, tmp_path
    )
    second: WorkerProcess | None = None
    try:
        assert first.stop(signal.SIGTERM) == 0, first.log_tail()
        hunted_first = [
            k
            for k, v in _ledger(redis_client, key_prefix, topics).items()
            if topics.calls in k and v == version
        ]
        assert len(hunted_first) < PARTITIONS  # stopped mid-hunt

        second = _worker(topics, key_prefix, tmp_path / "second", rate=100_000).start()
        _wait_hunted_through(redis_client, key_prefix, topics, version, 90)
        assert second.metrics().total("scamwatch_hunt_events_total", stream="calls") > 0
        records = _alerts(kafka_bootstrap, topics.alerts, len(scam_before))
        # read to the end: repeats of the first worker's partitions come after
        end = asyncio.run(
            read_topic(kafka_bootstrap, topics.alerts, until=lambda r: False, within=8)
        )
        assert len(end) >= len(records)
        _assert_each_call_hunted_with_one_id(end, scam_before)
    finally:
        first.kill()
        if second is not None:
            assert second.stop() == 0, second.log_tail()


def test_a_worker_joining_mid_hunt_hunts_the_partitions_it_takes(
    topics: Topics,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    first, scam_before, version = _hunting_slowly(
        topics, kafka_bootstrap, redis_url, redis_client, key_prefix, tmp_path
    )
    second: WorkerProcess | None = None
    try:
        # joins the group mid-hunt: the partitions it is given move, the rest stay
        second = _worker(topics, key_prefix, tmp_path / "second", rate=100_000).start()
        second.wait_assigned(90)
        _wait_hunted_through(redis_client, key_prefix, topics, version, 120)
        assert second.metrics().total("scamwatch_hunt_events_total", stream="calls") > 0
        records = asyncio.run(
            read_topic(kafka_bootstrap, topics.alerts, until=lambda r: False, within=8)
        )
        _assert_each_call_hunted_with_one_id(records, scam_before)
    finally:
        assert first.stop() == 0, first.log_tail()
        if second is not None:
            assert second.stop() == 0, second.log_tail()
