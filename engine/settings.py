"""Every setting scamwatch reads, from ``SCAMWATCH_*`` variables, grouped by concern.

Each group is its own frozen pydantic-settings model whose ``env_prefix`` gives the variable
names (``KafkaSettings.bootstrap`` is ``SCAMWATCH_KAFKA_BOOTSTRAP``). :func:`load_settings`
reads and validates them all once, at the entry point (each CLI command, the worker), and
the resulting :class:`Settings` is passed down; nothing reads the environment half-way.
Secrets are ``SecretStr`` and print as ``**********``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.core.region import parse_region
from engine.errors import ConfigError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# the SASL mechanisms Kafka brokers implement
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"]


def _kafka_name(value: str, what: str) -> str:
    if not _TOPIC.match(value):
        raise ValueError(f"{value!r} is not a valid Kafka {what} ([A-Za-z0-9._-]{{1,249}})")
    return value


class _Group(BaseSettings):
    """A group of settings: frozen, unknown ``SCAMWATCH_*`` variables left to other groups."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_", frozen=True, extra="ignore")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of one field (``bootstrap`` → ``SCAMWATCH_KAFKA_BOOTSTRAP``)."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


class KafkaSettings(_Group):
    """How every Kafka client scamwatch makes connects: the bootstrap servers and security.

    The one place the connection is converted for a client: :meth:`client_options` for
    aiokafka (producer, consumer, admin) and :meth:`faust_credentials` for the Faust app."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    # used with SASL_PLAINTEXT / SASL_SSL only
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    # the SASL password (for OAUTHBEARER: the bearer token)
    sasl_password: SecretStr | None = None
    sasl_kerberos_service_name: str = "kafka"  # GSSAPI only
    # TLS (SSL / SASL_SSL): the CA that signed the brokers' certificates (None: system CAs),
    # and a client certificate and key when the brokers ask for one (mutual TLS)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        servers = [s.strip() for s in v.split(",") if s.strip()]
        if not servers or not all(_HOSTPORT.match(s) for s in servers):
            raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return ",".join(servers)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        # checked here, not at the first connection: a worker must not start half-configured
        if self.uses_sasl and self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.sasl_username:
                raise ConfigError(
                    self.env_name("sasl_username"), f"{self.sasl_mechanism} needs a username"
                )
            if self.sasl_password is None:
                raise ConfigError(
                    self.env_name("sasl_password"), f"{self.sasl_mechanism} needs a password"
                )
        if self.uses_sasl and self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_password:
            raise ConfigError(self.env_name("sasl_password"), "OAUTHBEARER needs the token")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigError(self.env_name("ssl_certfile"), "a client key needs its certificate")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def broker_urls(self) -> list[str]:
        """Bootstrap servers as Faust wants them (``kafka://host:port``)."""
        return [f"kafka://{s}" for s in self.bootstrap.split(",")]

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client (None when the protocol has no TLS)."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def client_options(self) -> dict[str, Any]:
        """aiokafka options (producer, consumer, admin): bootstrap servers and security."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if not self.uses_sasl:
            return options
        options["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_mechanism == "GSSAPI":
            options["sasl_kerberos_service_name"] = self.sasl_kerberos_service_name
        elif self.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = _static_token(self.sasl_password)
        else:
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = _secret(self.sasl_password)
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """The same connection as Faust ``broker_credentials`` (None for PLAINTEXT)."""
        import faust
        from faust.auth import GSSAPICredentials, OAuthCredentials

        options = self.client_options()
        context = options.get("ssl_context")
        if not self.uses_sasl:
            return faust.SSLCredentials(context) if context is not None else None
        if self.sasl_mechanism == "GSSAPI":
            return GSSAPICredentials(
                kerberos_service_name=self.sasl_kerberos_service_name, ssl_context=context
            )
        if self.sasl_mechanism == "OAUTHBEARER":
            return OAuthCredentials(
                oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context
            )
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=context,
            mechanism=self.sasl_mechanism,
        )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _static_token(token: SecretStr | None) -> Any:
    """An aiokafka token provider handing out the configured bearer token."""
    from aiokafka.abc import AbstractTokenProvider

    class StaticToken(AbstractTokenProvider):  # type: ignore[misc]
        async def token(self) -> str:
            return _secret(token) or ""

    return StaticToken()


class RedisSettings(_Group):
    """The indicator store."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_REDIS_", frozen=True, extra="ignore")

    # a single Redis or any node of a Redis Cluster (detected); an ACL user and password
    # go in it (redis://USER:PASSWORD@host:port/0), TLS with rediss://
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # every indicator-store key starts with it (tests and benchmarks use their own)
    prefix: str = Field(default="scamwatch:", min_length=1, max_length=200)
    # rediss:// only: the CA (PEM) that signed the servers' certificates (None: system CAs)
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        scheme = urlsplit(v.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v == "" else v

    @model_validator(mode="after")
    def _ca(self) -> Self:
        if self.ca_file is None:
            return self
        if urlsplit(self.url.get_secret_value()).scheme != "rediss":
            raise ConfigError(self.env_name("ca_file"), "a CA file needs a rediss:// URL (TLS)")
        if not os.path.isfile(os.path.expanduser(self.ca_file)):
            raise ConfigError(self.env_name("ca_file"), f"no such file: {self.ca_file}")
        return self

    def client_options(self) -> dict[str, Any]:
        """redis-py options besides the URL (which carries host, user, password, TLS on/off)."""
        if self.ca_file is None:
            return {}
        return {"ssl_ca_certs": os.path.expanduser(self.ca_file)}


class TopicSettings(_Group):
    """Topic names, and how the worker creates the ones missing."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_TOPIC_", frozen=True, extra="ignore")

    calls: str = "calls"
    web: str = "web"
    alerts: str = "alerts"
    deadletter: str = "deadletter"
    sightings: str = "sightings"
    partitions: int = Field(default=8, ge=1)
    replication: int = Field(default=1, ge=1)

    @field_validator("calls", "web", "alerts", "deadletter", "sightings")
    @classmethod
    def _topic(cls, v: str) -> str:
        return _kafka_name(v, "topic name")


class ProcessingSettings(_Group):
    """How a record is read and what is produced from it (worker, ``scan``, ``indicators``)."""

    # the region national-format numbers are read in when an event or a feed says none
    default_region: str = "US"
    # biggest input record accepted; larger ones are dead-lettered as too_large
    max_record_bytes: int = Field(default=1_048_576, ge=1024)
    # the biggest alert/dead-letter a worker produces (keep below the broker's
    # message.max.bytes, 1 MiB by default); bigger ones drop their copy of the input
    max_output_bytes: int = Field(default=1_000_000, ge=65_536)

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        return parse_region(v)


class WorkerSettings(_Group):
    """``scamwatch worker``: group, data path, listeners, timings."""

    app_id: str = "scamwatch"  # Faust app id and consumer group
    # how input records reach the handler: a thin consumer hook (inline) or Faust agents
    data_path: Literal["inline", "agents"] = "inline"
    # create missing topics at start (with SCAMWATCH_TOPIC_PARTITIONS / _REPLICATION)
    create_topics: bool = True
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    web_port: int = Field(default=6066, ge=0, le=65535)
    # where /metrics listens (0.0.0.0 so Prometheus can scrape a pod) and where Faust's own
    # web server listens (loopback: nothing outside needs it)
    metrics_bind: str = "0.0.0.0"
    web_bind: str = "127.0.0.1"
    # how often to poll the indicator store's version (a change is live within 1 s)
    indicator_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # how long to wait for the first snapshot when Redis is down at start; after that it
    # starts with no indicators (loudly) and loads them when Redis answers
    snapshot_wait_seconds: float = Field(default=30.0, ge=0)
    # how often processed (acknowledged) input offsets are committed
    commit_interval_seconds: float = Field(default=2.8, gt=0, le=60)
    # a worker silent this long is dropped from the group and its partitions move
    session_timeout_seconds: float = Field(default=30.0, ge=6, le=300)
    # how long the producer waits to fill a batch of alerts/dead-letters
    producer_linger_seconds: float = Field(default=0.005, ge=0, le=1)
    # how much a fetch of the input topics (inline path) and of the exposures' alerts asks
    # the broker to gather before it answers, and the longest it may wait for it: with
    # Kafka's 1 byte, a worker fed live asks again and again for a few records each time
    fetch_min_bytes: int = Field(default=65_536, ge=1, le=52_428_800)
    fetch_max_wait_seconds: float = Field(default=0.02, gt=0, le=1.5)
    # freeze the built matcher out of the garbage collector's walks after each swap (off
    # only to measure the pauses it removes: benchmarks/bench_pipeline.py's before/after)
    gc_freeze: bool = True
    # automatic retro-hunts: when new or changed indicators arrive, hunt the input
    # partitions this worker owns back over this many seconds for them (0 = off)
    retrohunt_seconds: int = Field(default=0, ge=0)
    # the most retained events per second an automatic hunt reads (a token bucket): it runs
    # on the worker's event loop, so each event it reads is CPU the live path does not get
    retrohunt_rate: int = Field(default=1_000, ge=1)

    @property
    def fetch_max_wait_ms(self) -> int:
        """``fetch_max_wait_seconds`` as Kafka clients take it."""
        return max(1, round(self.fetch_max_wait_seconds * 1000))

    @field_validator("data_path", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, v: str) -> str:
        return _kafka_name(v, "group name")


class TaxiiSettings(_Group):
    """``scamwatch indicators pull taxii``: how to sign in to the TAXII 2.1 server."""

    model_config = SettingsConfigDict(env_prefix="SCAMWATCH_TAXII_", frozen=True, extra="ignore")

    # HTTP basic credentials; unset: the server is asked without any
    username: str | None = None
    password: SecretStr | None = None
    # the CA that signed an https server's certificate (None: the system CAs)
    cafile: str | None = None
    # how long to wait to connect, and then for each read of an answer
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.password is not None and not self.username:
            raise ConfigError(self.env_name("username"), "a TAXII password needs its username")
        return self


class DiscoverySettings(_Group):
    """The ``discover`` agent: numbers called by several exposed subscribers."""

    # off: no agent; alert: discovered_scam_number alerts; indicator: also a phone indicator
    discovery: Literal["off", "alert", "indicator"] = "alert"
    # distinct (partner_id, subscriber_id) are counted over this much event time
    discovery_window_seconds: int = Field(default=86_400, ge=1)
    # a number seen by this many of them is discovered
    discovery_min_subscribers: int = Field(default=3, ge=1)
    # a discovered indicator is valid this long (MISP's vishing decay model: 10 days)
    discovery_ttl_seconds: int = Field(default=864_000, ge=1)

    @field_validator("discovery", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class ProtectionSettings(_Group):
    """The live worker's stateful protection: victim journeys and alert suppression."""

    # a web alert exposes its subscriber this long from the web event's ts
    journey_window_seconds: int = Field(default=1800, ge=1)
    # alerts of the same key within this are counted, not emitted (0 = off)
    suppress_seconds: int = Field(default=600, ge=0)
    # false: no exposures, journeys, sightings or suppression at all (only to measure what
    # the stateful side costs: benchmarks/bench_pipeline.py's on/off rows)
    protection: bool = True


class StackSettings(_Group):
    """``scamwatch stack``: where the local Kafka and Redis keep their files."""

    # the data, logs and pid files of what `stack up` started
    state_dir: str = "~/.local/state/scamwatch"
    # the Kafka jars fetched from Maven Central (shared by every checkout)
    cache_dir: str = "~/.cache/scamwatch"


class Settings(BaseModel):
    """All the settings, one frozen group per concern; built by :func:`load_settings`."""

    model_config = ConfigDict(frozen=True)

    kafka: KafkaSettings
    redis: RedisSettings
    topics: TopicSettings
    processing: ProcessingSettings
    worker: WorkerSettings
    protection: ProtectionSettings
    stack: StackSettings
    taxii: TaxiiSettings
    discovery: DiscoverySettings

    GROUPS: ClassVar[Mapping[str, type[_Group]]] = {
        "kafka": KafkaSettings,
        "redis": RedisSettings,
        "topics": TopicSettings,
        "processing": ProcessingSettings,
        "worker": WorkerSettings,
        "protection": ProtectionSettings,
        "stack": StackSettings,
        "taxii": TaxiiSettings,
        "discovery": DiscoverySettings,
    }

    @classmethod
    def env_names(cls) -> set[str]:
        """Every ``SCAMWATCH_*`` variable scamwatch reads."""
        return {g.env_name(f) for g in cls.GROUPS.values() for f in g.model_fields}

    def redacted(self) -> dict[str, object]:
        """Every setting by its variable, safe to print: secrets masked, the Redis URL
        without its password."""
        out: dict[str, object] = {}
        for group_name, group in self.GROUPS.items():
            values = getattr(self, group_name)
            for field in group.model_fields:
                value = getattr(values, field)
                if isinstance(value, SecretStr):
                    secret = value.get_secret_value()
                    value = _redact_url(secret) if group is RedisSettings else "**********"
                out[group.env_name(field)] = value
        return out


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}****@{netloc}").geturl()


def load_settings(**overrides: Mapping[str, object]) -> Settings:
    """Read and validate every setting once; a bad one raises :class:`ConfigError` naming
    its variable. ``overrides`` by group, e.g. ``load_settings(worker={"web_port": 0})``
    (command-line flags, tests)."""
    unknown = set(overrides) - set(Settings.GROUPS)
    if unknown:
        raise TypeError(f"no settings group {sorted(unknown)}")
    groups: dict[str, _Group] = {}
    for name, group in Settings.GROUPS.items():
        try:
            groups[name] = group(**overrides.get(name, {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            raise ConfigError(group.env_name(field).rstrip("_"), first["msg"]) from exc
    return Settings(**groups)  # type: ignore[arg-type]
