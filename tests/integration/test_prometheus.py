"""A real Prometheus (Debian's package, `make tools`) scrapes a real worker on the real local
Kafka and Redis, with deploy/prometheus/rules.yml loaded: through Prometheus' HTTP API the
target is up, the scamwatch series carry what the worker did, and every rule evaluates."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from engine.core.models import Indicator, IndicatorType
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    Topics,
    WorkerProcess,
    call_event,
    create_topics,
    delete_topics,
    free_port,
    produce,
    web_event,
)

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
SCAM_NUMBER = "+18005550199"
SCAM_DOMAIN = "evil-support.example"
MATCHED_CALLS, CLEAN_CALLS, MATCHED_WEB, BAD_CALLS = 3, 2, 1, 1


def _get(port: int, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"http://127.0.0.1:{port}{path}{query}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def _query(port: int, expr: str) -> dict[str, float]:
    """An instant query's vector as ``{'label=value,...': value}`` (labels sorted)."""
    data = _get(port, "/api/v1/query", query=expr)
    assert data["resultType"] == "vector", data
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
        for r in data["result"]
    }


def _instant(text: str) -> datetime:
    """An RFC 3339 time as Prometheus' API writes it (nanoseconds, kept to microseconds)."""
    match = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match is not None, text
    whole, fraction, offset = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    return datetime.fromisoformat(f"{whole}.{micro}{'+00:00' if offset == 'Z' else offset}")


def _wait(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not so within {timeout} s (last: {last!r})")


class Prometheus:
    """One ``prometheus`` process of the test's own: own port, own storage, on loopback."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: run `make tools`", False)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "scamwatch", "static_configs": [{"targets": targets}]}],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def scraped(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, WorkerProcess, Topics, int]]:
    """A worker that handled a few events, and a Prometheus scraping it."""
    topics = Topics(f"test-{uuid.uuid4().hex[:12]}")
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    asyncio.run(create_topics(kafka_bootstrap, topics.all, partitions=1))
    store = RedisStore.from_url(redis_url, prefix=prefix)
    store.upsert(
        [
            Indicator(IndicatorType.PHONE, SCAM_NUMBER, sources=("test",)),
            Indicator(IndicatorType.DOMAIN, SCAM_DOMAIN, sources=("test",)),
        ]
    )
    version = store.version()
    worker = WorkerProcess(topics, prefix, tmp_path_factory.mktemp("worker")).start()
    prometheus: Prometheus | None = None
    try:
        worker.wait_assigned()
        calls = [call_event(i, callee=SCAM_NUMBER) for i in range(MATCHED_CALLS)]
        calls += [call_event(10 + i, callee="+12025550111") for i in range(CLEAN_CALLS)]
        calls += [b"not json"] * BAD_CALLS
        asyncio.run(produce(kafka_bootstrap, topics.calls, [(None, v) for v in calls]))
        webs = [web_event(i, host=f"www.{SCAM_DOMAIN}") for i in range(MATCHED_WEB)]
        asyncio.run(produce(kafka_bootstrap, topics.web, [(None, v) for v in webs]))
        everything = MATCHED_CALLS + CLEAN_CALLS + BAD_CALLS + MATCHED_WEB
        worker.wait_metric(
            lambda m: (
                sum(v for k, v in m.items() if k.startswith("scamwatch_events_total{"))
                >= everything
            )
        )
        prometheus = Prometheus(
            tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{worker.metrics_port}"]
        )
        _wait(prometheus.ready, "Prometheus ready")
        yield prometheus, worker, topics, version
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.stop()
        asyncio.run(delete_topics(kafka_bootstrap, topics.made))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_prometheus_scrapes_the_worker_as_an_up_target(
    scraped: tuple[Prometheus, WorkerProcess, Topics, int],
) -> None:
    prometheus, worker, _, _ = scraped

    def up_target() -> dict[str, Any] | None:
        active = _get(prometheus.port, "/api/v1/targets", state="active")["activeTargets"]
        return next((t for t in active if t["health"] == "up"), None)

    target = _wait(up_target, "the worker target is up")
    assert target["labels"] == {"job": "scamwatch", "instance": f"127.0.0.1:{worker.metrics_port}"}
    assert target["scrapeUrl"] == f"http://127.0.0.1:{worker.metrics_port}/metrics"
    assert target["lastError"] == ""
    assert _query(prometheus.port, 'up{job="scamwatch"}') == {
        f"__name__=up,instance=127.0.0.1:{worker.metrics_port},job=scamwatch": 1.0
    }


def test_the_scamwatch_series_carry_what_the_worker_did(
    scraped: tuple[Prometheus, WorkerProcess, Topics, int],
) -> None:
    prometheus, _, topics, version = scraped
    port = prometheus.port
    expected_events = {
        "outcome=matched,stream=calls": float(MATCHED_CALLS),
        "outcome=clean,stream=calls": float(CLEAN_CALLS),
        "outcome=deadletter,stream=calls": float(BAD_CALLS),
        "outcome=matched,stream=web": float(MATCHED_WEB),
        "outcome=clean,stream=web": 0.0,
        "outcome=deadletter,stream=web": 0.0,
    }
    events = _wait(
        lambda: (
            (e := _query(port, "sum by (stream, outcome) (scamwatch_events_total)"))
            == expected_events
            and e
        ),
        "scamwatch_events_total in Prometheus",
    )
    assert events == expected_events
    assert _query(port, "scamwatch_indicator_store_up") != {}
    assert set(_query(port, "scamwatch_indicator_store_up").values()) == {1.0}
    assert set(_query(port, "scamwatch_indicator_version").values()) == {float(version)}
    assert _query(port, "sum by (type) (scamwatch_indicators)")["type=phone"] == 1.0
    assert _query(port, "sum by (type) (scamwatch_indicators)")["type=domain"] == 1.0
    alerts = _query(port, "sum(scamwatch_alerts_total)")
    assert alerts[""] >= MATCHED_CALLS + MATCHED_WEB
    deadletters = _query(port, "sum by (stream) (scamwatch_deadletter_total)")
    assert deadletters == {"stream=calls": float(BAD_CALLS)}
    assert _query(port, "sum(scamwatch_matcher_build_seconds_count)")[""] >= 1
    latency = _query(port, "sum by (stream) (scamwatch_event_latency_seconds_count)")
    assert latency["stream=calls"] >= MATCHED_CALLS + CLEAN_CALLS
    assert latency["stream=web"] >= MATCHED_WEB
    assert set(_query(port, "scamwatch_assigned_partitions").values()) == {2.0}

    # every input read to its end: no lag on either partition (refreshed every 2 s)
    def lag_of_both_inputs() -> dict[str, float] | None:
        lag = _query(port, "max by (topic, partition) (scamwatch_consumer_lag)")
        return lag if len(lag) == 2 else None

    lag = _wait(lag_of_both_inputs, "scamwatch_consumer_lag of both input partitions")
    assert lag == {
        f"partition=0,topic={topics.calls}": 0.0,
        f"partition=0,topic={topics.web}": 0.0,
    }


def test_prometheus_loads_and_evaluates_every_rule_of_rules_yml(
    scraped: tuple[Prometheus, WorkerProcess, Topics, int],
) -> None:
    prometheus, _, _, _ = scraped
    doc = yaml.safe_load(RULES.read_text())
    expected = {g["name"]: len(g["rules"]) for g in doc["groups"]}

    def scraped_at() -> datetime | None:
        active = _get(prometheus.port, "/api/v1/targets", state="active")["activeTargets"]
        up = [t for t in active if t["health"] == "up"]
        return _instant(up[0]["lastScrape"]) if up else None

    # rules evaluated before the first scrape see no series at all (absent() holds, so
    # ScamwatchMetricsAbsent would be pending): judge evaluations made after a scrape
    first_scrape = _wait(scraped_at, "the worker target scraped")

    def evaluated() -> list[dict[str, Any]] | None:
        groups = _get(prometheus.port, "/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # a rule not evaluated yet has lastEvaluation 0001-01-01T00:00:00Z
        done = rules and all(_instant(r["lastEvaluation"]) > first_scrape for r in rules)
        return rules if done else None

    rules = _wait(evaluated, "every rule evaluated once")
    groups = _get(prometheus.port, "/api/v1/rules")["groups"]
    assert {g["name"]: len(g["rules"]) for g in groups} == expected
    unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not unhealthy
    # the worker is up, reaches Redis and holds indicators: those alerts are not pending
    alerts = {a["labels"]["alertname"] for a in _get(prometheus.port, "/api/v1/alerts")["alerts"]}
    assert not alerts & {
        "ScamwatchWorkerDown",
        "ScamwatchIndicatorStoreDown",
        "ScamwatchMetricsAbsent",
        "ScamwatchNoIndicators",
    }
