"""Shared fixtures. Tests under tests/integration and tests/e2e use the real local Kafka and
Redis (``scamwatch stack up``, started by ``make test``); when either is missing they fail
with a message saying so, they never skip."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from engine.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    url = settings.redis.url.get_secret_value()
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}); run `scamwatch stack up`", False)
    return url


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    host, _, port = settings.kafka.bootstrap.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        pytest.fail(
            f"Kafka is not reachable at {settings.kafka.bootstrap}; run `scamwatch stack up`",
            False,
        )
    return settings.kafka.bootstrap


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def unique_name() -> str:
    """A fresh name for a topic or consumer group of this test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"
