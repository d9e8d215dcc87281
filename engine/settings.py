"""One settings object, read from ``SCAMWATCH_*`` variables and validated at start."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import ConfigError

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class Settings(BaseSettings):
    """Every setting scamwatch reads. Secrets are ``SecretStr`` and print as ``**********``."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # every indicator-store key starts with it (tests and benchmarks use their own)
    redis_prefix: str = Field(default="scamwatch:", min_length=1, max_length=200)
    default_region: str = "US"
    topic_calls: str = "calls"
    topic_web: str = "web"
    topic_alerts: str = "alerts"
    topic_deadletter: str = "deadletter"
    app_id: str = "scamwatch"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    web_port: int = Field(default=6066, ge=0, le=65535)
    # worker: where /metrics listens (0.0.0.0 so Prometheus can scrape a pod) and where
    # Faust's own web server listens (loopback: nothing outside needs it)
    metrics_bind: str = "0.0.0.0"
    web_bind: str = "127.0.0.1"
    # worker: how often to poll the indicator store's version (changes live within 2 s)
    indicator_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # worker: how long to wait for the first snapshot when Redis is down at start; after
    # that it starts with no indicators (loudly) and loads them when Redis answers
    snapshot_wait_seconds: float = Field(default=30.0, ge=0)
    # worker: how often processed (acknowledged) input offsets are committed
    commit_interval_seconds: float = Field(default=2.8, gt=0, le=60)
    # worker: a worker silent this long is dropped from the group and its partitions move
    session_timeout_seconds: float = Field(default=30.0, ge=6, le=300)
    # worker: the biggest alert/dead-letter it produces (keep below the broker's
    # message.max.bytes, 1 MiB by default); bigger ones drop their copy of the input
    max_output_bytes: int = Field(default=1_000_000, ge=65_536)
    # worker: how long the producer waits to fill a batch of alerts/dead-letters
    producer_linger_seconds: float = Field(default=0.005, ge=0, le=1)
    # Kafka security (all optional; secrets never logged)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # biggest input record accepted; larger ones are dead-lettered as too_large
    max_record_bytes: int = Field(default=1_048_576, ge=1024)
    # where `scamwatch stack` keeps the data, logs and pid files of what it started
    state_dir: str = "~/.local/state/scamwatch"
    # where the Kafka jars fetched from Maven Central are kept (shared by every checkout)
    cache_dir: str = "~/.cache/scamwatch"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        servers = [s.strip() for s in v.split(",") if s.strip()]
        if not servers or not all(_HOSTPORT.match(s) for s in servers):
            raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return ",".join(servers)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr) -> SecretStr:
        scheme = urlsplit(v.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        region = v.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not an ISO 3166 alpha-2 region phonenumbers knows")
        return region

    @field_validator("topic_calls", "topic_web", "topic_alerts", "topic_deadletter", "app_id")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not _TOPIC.match(v):
            raise ValueError(
                f"{v!r} is not a valid Kafka topic/group name ([A-Za-z0-9._-]{{1,249}})"
            )
        return v

    @field_validator("kafka_security_protocol")
    @classmethod
    def _protocol(cls, v: str) -> str:
        allowed = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        if v.upper() not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return v.upper()

    @property
    def kafka_broker_urls(self) -> list[str]:
        """Bootstrap servers as Faust wants them (``kafka://host:port``)."""
        return [f"kafka://{s}" for s in self.kafka_bootstrap.split(",")]

    def redacted(self) -> dict[str, object]:
        """The settings safe to print: secrets masked, the Redis URL without its password."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                out[name] = _redact_url(secret) if name == "redis_url" else "**********"
            else:
                out[name] = value
        return out


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}****@{netloc}").geturl()


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad one raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigError(f"SCAMWATCH_{name.upper()}", first["msg"]) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
