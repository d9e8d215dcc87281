"""Events into Kafka and alerts out of it: the transport under ``replay``, ``alerts tail``,
the demo and the pipeline benchmark.

Replay is a transport, not a validator: every non-blank line of a file is sent as it is,
and a line that is not a JSON object is counted (the worker dead-letters it), never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from murmurhash2 import murmurhash2
from rich.text import Text

from engine.core.records import Alert, DeadLetter, RecordError
from engine.core.timestamps import parse_rfc3339
from engine.errors import ConfigError, ScamwatchError, TransportError
from engine.settings import KafkaSettings

# the seed of Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2)
_KAFKA_MURMUR2_SEED = 0x9747B28C


def key_partition(key: bytes, all_partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner gives ``key`` (the Java client's, and
    aiokafka's ``DefaultPartitioner``): ``toPositive(murmur2(key)) % count``."""
    h = murmurhash2(key, _KAFKA_MURMUR2_SEED) & 0x7FFFFFFF
    return all_partitions[h % len(all_partitions)]


class KeyPartitioner:
    """aiokafka's ``DefaultPartitioner`` with the hash in C (``murmurhash2``): the same
    partition for every key, ~20× cheaper than its pure-Python murmur2 (12 µs a key of 24
    bytes, 2026-12-05), which every keyed alert and sighting the worker sends paid. Given to
    every producer through the public ``partitioner`` option (Faust's
    ``producer_partitioner``). A keyless record goes to a random available partition, as
    aiokafka's does."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return key_partition(key, all_partitions)


# sends in flight before replay waits for acknowledgements (bounds memory on huge files)
_MAX_IN_FLIGHT = 20_000
# how long a command waits at start for Kafka to answer (and accept its credentials)
CONNECT_TIMEOUT_S = 15.0


async def check_connection(kafka: KafkaSettings, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connect to a bootstrap server with the configured security and ask it for metadata,
    within ``timeout_s``: every command calls this at start, so a refused password or an
    untrusted certificate stops it with the setting to fix (aiokafka and Faust would only
    log it and retry, or fail with "Unable to bootstrap")."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    options = kafka.client_options()
    deadline = asyncio.get_running_loop().time() + timeout_s
    failures: list[str] = []
    for server in kafka.bootstrap.split(","):
        host, _, port = server.rpartition(":")
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                conn = await create_conn(
                    host.strip("[]"),
                    int(port),
                    client_id="scamwatch-check",
                    request_timeout_ms=int(left * 1000),
                    ssl_context=options.get("ssl_context"),
                    security_protocol=kafka.security_protocol,
                    sasl_mechanism=options.get("sasl_mechanism"),
                    sasl_plain_username=options.get("sasl_plain_username"),
                    sasl_plain_password=options.get("sasl_plain_password"),
                    sasl_kerberos_service_name=kafka.sasl_kerberos_service_name,
                    sasl_oauth_token_provider=options.get("sasl_oauth_token_provider"),
                )
                try:
                    await conn.send(MetadataRequest([]))
                finally:
                    conn.close()
            return
        except (OSError, KafkaError, TimeoutError) as exc:
            refused = _refused(kafka, server, exc)
            if refused is not None:
                raise refused from None
            failures.append(f"{server}: {_describe(exc)}")
    why = "; ".join(failures) or "timed out"
    raise TransportError(
        f"Kafka at {kafka.bootstrap} is unreachable with SCAMWATCH_KAFKA_SECURITY_PROTOCOL="
        f"{kafka.security_protocol} within {timeout_s:.0f} s ({why}): "
        "is the broker up, and does the protocol match its listener?",
        source="SCAMWATCH_KAFKA_BOOTSTRAP",
    )


def _refused(kafka: KafkaSettings, server: str, exc: BaseException) -> ScamwatchError | None:
    """The error naming the setting to fix when the broker answered and refused us."""
    if isinstance(exc, SaslAuthenticationFailed | IllegalSaslStateError):
        return ConfigError(
            "SCAMWATCH_KAFKA_SASL_PASSWORD",
            f"Kafka at {server} refused {kafka.sasl_mechanism} authentication of user "
            f"{kafka.sasl_username!r} (wrong password, or no such user): {_describe(exc)}",
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return ConfigError(
            "SCAMWATCH_KAFKA_SASL_MECHANISM",
            f"Kafka at {server} does not offer {kafka.sasl_mechanism} on that listener",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigError(
            "SCAMWATCH_KAFKA_SSL_CAFILE",
            f"the certificate of Kafka at {server} is not trusted "
            f"({getattr(exc, 'verify_message', None) or exc}); give the CA that signed it",
        )
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc
        return ConfigError(
            "SCAMWATCH_KAFKA_SECURITY_PROTOCOL",
            f"the TLS handshake with Kafka at {server} failed ({reason}): is that a TLS listener?",
        )
    return None


def _describe(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    return text if name in text else f"{name}: {text}" if text else name


def event_key(record: object) -> bytes | None:
    """The Kafka key of an input event: ``partner_id:subscriber_id``, or ``partner_id:event_id``
    when the partner sent no subscriber (so one subscriber's events stay in one partition).
    ``None`` for anything that is not a JSON object with a partner (spread round-robin)."""
    if not isinstance(record, dict):
        return None
    partner = record.get("partner_id")
    if not isinstance(partner, str):
        return None
    subscriber = record.get("subscriber_id")
    if not isinstance(subscriber, str) or not subscriber:
        subscriber = record.get("event_id")
    if not isinstance(subscriber, str | int):
        return partner.encode()
    return f"{partner}:{subscriber}".encode()


def parse_line(line: bytes) -> tuple[bytes | None, bool]:
    """``(key, is_json_object)`` for one input line."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, False
    return event_key(record), isinstance(record, dict)


class TokenBucket:
    """Paces sends to ``rate`` per second, allowing a burst of ``burst`` (default: 50 ms worth)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate / 20)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self, n: float = 1.0) -> None:
        """Wait until ``n`` tokens are there, then spend them."""
        self._refill()
        # sleep at least 5 ms (or one burst): timer granularity makes shorter sleeps overshoot
        floor = min(0.005, self.capacity / self.rate / 4)
        while self._tokens < n:
            await asyncio.sleep(max((n - self._tokens) / self.rate, floor))
            self._refill()
        self._tokens -= n


@dataclass(slots=True)
class ReplayStats:
    """What one replay sent."""

    sent: int = 0
    bytes: int = 0
    not_json: int = 0  # lines that are not a JSON object: sent as-is, the worker dead-letters them
    blank: int = 0  # empty lines: skipped
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def iter_file_lines(path: Path) -> Iterator[tuple[bytes, int]]:
    """Each line of a file (``.gz`` read through gzip) as raw bytes, line ending removed,
    with how far into the file (on disk) it moved, for a progress bar."""
    with path.open("rb") as raw:
        if path.suffix != ".gz":
            for line in raw:
                yield line.rstrip(b"\r\n"), len(line)
            return
        with gzip.GzipFile(fileobj=raw) as fh:
            done = 0
            for line in fh:
                position = raw.tell()
                yield line.rstrip(b"\r\n"), position - done
                done = position


async def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A started producer tuned for throughput (small linger, large batches) that loses
    nothing it reports as sent: ``acks="all"`` waits for every in-sync replica, so a leader
    failover cannot drop acknowledged records (``acks=1`` could)."""
    options: dict[str, Any] = {
        **kafka.client_options(),
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "acks": "all",
        "client_id": "scamwatch-replay",
        "partitioner": KeyPartitioner(),
    }
    options.update(overrides)
    await check_connection(kafka)
    producer = AIOKafkaProducer(**options)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise TransportError(f"Kafka at {kafka.bootstrap} is unreachable: {exc}") from exc
    return producer


async def replay_lines(
    lines: Iterable[tuple[bytes, int]],
    *,
    topic: str,
    kafka: KafkaSettings,
    rate: float | None = None,
    on_progress: Callable[[ReplayStats, int], None] | None = None,
    producer: AIOKafkaProducer | None = None,
) -> ReplayStats:
    """Send each ``(line, size)`` to ``topic`` keyed by partner and subscriber, paced at ``rate``
    events/s when given; waits for every acknowledgement before it returns.
    ``on_progress(stats, consumed_bytes)`` is called every few hundred lines."""
    own = producer is None
    prod = producer if producer is not None else await make_producer(kafka)
    bucket = TokenBucket(rate) if rate else None
    stats = ReplayStats()
    consumed = 0
    pending: deque[asyncio.Future[Any]] = deque()
    started = time.monotonic()
    try:
        for line, size in lines:
            consumed += size
            if not line.strip():
                stats.blank += 1
                continue
            key, is_object = parse_line(line)
            if not is_object:
                stats.not_json += 1
            if bucket is not None:
                await bucket.take()
            pending.append(await prod.send(topic, value=line, key=key))
            stats.sent += 1
            stats.bytes += len(line)
            if len(pending) >= _MAX_IN_FLIGHT:
                for _ in range(_MAX_IN_FLIGHT // 2):
                    await pending.popleft()
            if on_progress is not None and stats.sent % 500 == 0:
                on_progress(stats, consumed)
        await prod.flush()
        for fut in pending:
            await fut
    except KafkaError as exc:
        raise TransportError(f"sending to {topic!r} failed after {stats.sent} sent: {exc}") from exc
    finally:
        stats.elapsed_s = time.monotonic() - started
        if own:
            await prod.stop()
    if on_progress is not None:
        on_progress(stats, consumed)
    return stats


async def ensure_topics(kafka: KafkaSettings, topics: Sequence[str], partitions: int = 1) -> None:
    """Create the topics that do not exist yet (replication factor 1: the local stack)."""
    await check_connection(kafka)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    missing = list(topics)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            # another process may make one in between: fine
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
    except KafkaError as exc:
        raise TransportError(f"cannot create topics {missing!r}: {exc}") from exc
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaSettings, topics: Sequence[str]) -> None:
    """Delete topics (best effort: the demo and the benchmark clean up what they made)."""
    try:
        await check_connection(kafka)
    except ScamwatchError:
        return  # nothing was made, or it cannot be reached: leave quietly
    admin = AIOKafkaAdminClient(**kafka.client_options())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    except KafkaError:
        pass  # leftover topics are harmless; never fail a run over cleanup
    finally:
        await admin.close()


async def iter_records(
    kafka: KafkaSettings,
    topics: Sequence[str],
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    group_id: str | None = None,
) -> AsyncGenerator[tuple[str, bytes], None]:
    """Yield ``(topic, value)`` from ``topics``. Without ``group_id`` the consumer joins no
    group and commits nothing, so it never takes partitions from a SIEM's group. Stops after
    ``idle_timeout`` seconds with no record."""
    await check_connection(kafka)
    consumer = AIOKafkaConsumer(
        *topics,
        **kafka.client_options(),
        group_id=group_id,
        enable_auto_commit=group_id is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        client_id="scamwatch-tail",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise TransportError(f"Kafka at {kafka.bootstrap} is unreachable: {exc}") from exc
    try:
        while True:
            timeout_ms = int(idle_timeout * 1000) if idle_timeout is not None else 1000
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=500)
            if not batches:
                if idle_timeout is not None:
                    return
                continue
            for tp, records in batches.items():
                for record in records:
                    yield tp.topic, record.value if record.value is not None else b""
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- readable alerts

_SEVERITY_STYLE = {
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def _when(value: object) -> str:
    """An alert time (RFC 3339, or epoch ms from another producer) as ``YYYY-MM-DD HH:MM:SS``
    UTC."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            ms = value
        elif isinstance(value, str):
            ms = parse_rfc3339(value)
        else:
            return "-"
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# one match as a line shows it: field, observed, indicator type, value, sources
_MatchView = tuple[str, str, str, str, Sequence[str]]


def _line(
    when: object, severity: str, rule: str, partner: str, subscriber: str | None,
    matches: Iterable[_MatchView],
) -> Text:  # fmt: skip
    line = Text()
    line.append(_when(when), style="dim")
    line.append(" ")
    line.append(f"{severity.upper():<8}", style=_SEVERITY_STYLE.get(severity, "bold"))
    line.append(" ")
    line.append(f"{rule:<21}", style="bold")
    line.append(f" {partner}/{subscriber or '-'}")
    for field, observed, type_, value, sources in matches:
        line.append(f"  {field}={observed}")
        line.append(" → ", style="dim")
        line.append(f"{type_} {value}", style="magenta")
        if sources:
            line.append(f" [{', '.join(sources)}]", style="dim")
    return line


def format_alert(alert: Alert) -> Text:
    """One readable line: time, severity (coloured), rule, partner/subscriber,
    observed → indicator, sources."""
    return _line(
        alert.event_ts or alert.ts,
        alert.severity,
        alert.rule,
        alert.partner_id,
        alert.subscriber_id,
        (
            (m.field, m.observed, m.indicator.type, m.indicator.value, m.indicator.sources)
            for m in alert.matches
        ),
    )


def render_alert(value: bytes) -> Text | None:
    """The readable line of an alert record as ``alerts tail`` prints it, or ``None`` when
    ``value`` is not a JSON object. A full alert.v1 is read as an :class:`Alert`; a partial one
    (another producer's, fields missing) is shown as far as it goes, ``?`` for the rest."""
    alert = decode_alert(value)
    if alert is not None:
        return format_alert(alert)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    return _line(
        doc.get("event_ts", doc.get("ts")),
        str(doc.get("severity", "?")),
        str(doc.get("rule", "?")),
        str(doc.get("partner_id", "?")),
        doc.get("subscriber_id") or None,
        _partial_matches(doc.get("matches")),
    )


def _partial_matches(matches: object) -> Iterator[_MatchView]:
    for match in matches if isinstance(matches, list) else []:
        if not isinstance(match, dict):
            continue
        indicator = match.get("indicator")
        indicator = indicator if isinstance(indicator, dict) else {}
        sources = indicator.get("sources") or indicator.get("source") or []
        sources = [sources] if isinstance(sources, str) else sources
        yield (
            str(match.get("field", "?")),
            str(match.get("observed", "?")),
            str(indicator.get("type", "?")),
            str(indicator.get("value", "?")),
            [str(s) for s in sources] if isinstance(sources, list) else [],
        )


def decode_alert(value: bytes) -> Alert | None:
    """An alert.v1 record, or ``None`` when ``value`` is not one."""
    try:
        return Alert.from_json(value)
    except RecordError:
        return None


def decode_deadletter(value: bytes) -> DeadLetter | None:
    """A deadletter.v1 record, or ``None`` when ``value`` is not one."""
    try:
        return DeadLetter.from_json(value)
    except RecordError:
        return None
