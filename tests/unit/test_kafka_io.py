"""Pure parts of the transport: record keys, line parsing, readable alert lines."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import orjson
import pytest
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from engine.errors import ConfigError, TransportError
from engine.kafka_io import (
    KeyPartitioner,
    _refused,
    check_connection,
    decode_alert,
    event_key,
    format_alert,
    key_partition,
    parse_line,
    render_alert,
)
from engine.settings import KafkaSettings


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"partner_id": "telco-a", "subscriber_id": "sub-9", "event_id": "e1"}, b"telco-a:sub-9"),
        ({"partner_id": "telco-a", "event_id": "e1"}, b"telco-a:e1"),  # no subscriber: call id
        ({"partner_id": "telco-a", "subscriber_id": "", "event_id": "e1"}, b"telco-a:e1"),
        ({"partner_id": "telco-a"}, b"telco-a"),
        ({"event_id": "e1"}, None),  # no partner: round-robin (it is dead-lettered anyway)
        ([1, 2], None),
        ("text", None),
    ],
)
def test_event_key(record: object, key: bytes | None) -> None:
    assert event_key(record) == key


def test_parse_line() -> None:
    assert parse_line(b'{"partner_id": "p", "event_id": "x"}') == (b"p:x", True)
    assert parse_line(b"CDR|p|garbage") == (None, False)
    assert parse_line(b"[1, 2]") == (None, False)
    assert parse_line(b'{"partner_id": "p", "event_id": "x"') == (None, False)


def _alert(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "alert_id": "a-1",
        "ts": "2026-01-01T10:20:31.000Z",
        "event_ts": "2026-01-01T10:20:30.000Z",
        "stream": "calls",
        "severity": "critical",
        "rule": "callee_scam_number",
        "partner_id": "telco-a",
        "subscriber_id": "sub-1",
        "event_id": "e-1",
        "matches": [
            {
                "field": "callee",
                "observed": "(800) 555-0199",
                "normalized": "+18005550199",
                "indicator": {
                    "type": "phone",
                    "value": "+18005550199",
                    "sources": ["ftc", "x"],
                    "severity": "critical",
                    "confidence": 90,
                    "tags": [],
                    "valid_until": None,
                },
            }
        ],
        "event": {"event_id": "e-1"},
        "source": {"topic": "calls", "partition": 0, "offset": 7},
        "engine": {"version": "1", "indicator_version": 3},
    }
    doc.update(changes)
    return doc


def test_format_alert_reads_like_a_log_line() -> None:
    alert = decode_alert(orjson.dumps(_alert()))
    assert alert is not None
    line = format_alert(alert).plain
    assert line.startswith("2026-01-01 10:20:30 CRITICAL callee_scam_number")
    assert "telco-a/sub-1" in line
    assert "callee=(800) 555-0199 → phone +18005550199 [ftc, x]" in line
    # epoch milliseconds read the same
    alert = decode_alert(orjson.dumps(_alert(event_ts=1767262830000)))
    assert alert is not None
    assert format_alert(alert).plain.startswith("2026-01-01 10:20:30")


def test_format_alert_survives_a_partial_record() -> None:
    partial = {"rule": "url_scam_url", "matches": ["junk", {"indicator": None}]}
    assert decode_alert(orjson.dumps(partial)) is None  # no alert.v1 ...
    line = render_alert(orjson.dumps(partial))  # ... but tail still shows what it has
    assert line is not None
    assert "url_scam_url" in line.plain
    assert "?/-" in line.plain
    assert render_alert(b"not json") is None
    assert render_alert(b"[1]") is None


def test_a_full_alert_renders_as_format_alert_does() -> None:
    value = orjson.dumps(_alert())
    alert = decode_alert(value)
    assert alert is not None
    line = render_alert(value)
    assert line is not None and line.plain == format_alert(alert).plain


def test_format_alert_without_subscriber_or_event_time() -> None:
    alert = decode_alert(orjson.dumps(_alert(subscriber_id=None, event_ts=None)))
    assert alert is not None
    line = format_alert(alert).plain
    assert line.startswith("2026-01-01 10:20:31 CRITICAL")  # the emitted time, then
    assert "telco-a/-" in line


def test_decode_alert() -> None:
    alert = decode_alert(orjson.dumps(_alert()))
    assert alert is not None and alert.alert_id == "a-1" and alert.rule == "callee_scam_number"
    assert alert.to_dict() == _alert()  # reads back as it was written
    assert decode_alert(b'{"rule": "x"}') is None
    assert decode_alert(b"not json") is None
    assert decode_alert(b"[1]") is None


# ------------------------------------------------------------ the connection check at start


def _sasl_settings(**extra: object) -> KafkaSettings:
    return KafkaSettings(
        bootstrap="127.0.0.1:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password=SecretStr("hunter2-secret"),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("exc", "setting", "words"),
    [
        (
            SaslAuthenticationFailed("invalid credentials"),
            "SCAMWATCH_KAFKA_SASL_PASSWORD",
            "'alice'",
        ),
        (UnsupportedSaslMechanismError("no"), "SCAMWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            "SCAMWATCH_KAFKA_SSL_CAFILE",
            "not trusted",
        ),
        (ssl.SSLError(1, "wrong version number"), "SCAMWATCH_KAFKA_SECURITY_PROTOCOL", "TLS"),
    ],
)
def test_a_refusal_names_the_setting_to_fix(exc: Exception, setting: str, words: str) -> None:
    error = _refused(_sasl_settings(), "b-1:9096", exc)
    assert isinstance(error, ConfigError)
    assert error.setting == setting
    assert words in str(error) and "b-1:9096" in str(error)
    assert "hunter2-secret" not in str(error)


def test_a_network_failure_is_no_refusal() -> None:
    assert _refused(_sasl_settings(), "b-1:9096", ConnectionRefusedError(111, "refused")) is None


def test_nothing_listening_fails_fast_naming_the_bootstrap() -> None:
    with socket.socket() as s:  # a port nothing listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}")
        with pytest.raises(TransportError) as caught:
            asyncio.run(check_connection(kafka, timeout_s=5))
    assert caught.value.source == "SCAMWATCH_KAFKA_BOOTSTRAP"
    assert "PLAINTEXT" in str(caught.value)


def test_a_listener_that_never_answers_is_a_bounded_wait() -> None:
    """Something accepts the connection and says nothing: the check gives up (a
    TransportError), it does not hang (wait_for fails the test with a TimeoutError if it does)."""

    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TransportError):
                await asyncio.wait_for(
                    check_connection(KafkaSettings(bootstrap=f"127.0.0.1:{port}"), timeout_s=1),
                    timeout=60,
                )
        finally:
            server.close()

    asyncio.run(run())


RECHECK = (
    "engine/kafka_io.py check_connection uses aiokafka internals (aiokafka.conn.create_conn, "
    "AIOKafkaConnection.send/close, aiokafka.protocol.metadata.MetadataRequest) that the "
    "installed aiokafka changed: re-check how it connects, authenticates and asks for "
    "metadata, and that its refusals still map to the settings to fix (_refused)"
)


def test_the_aiokafka_internals_check_connection_uses_are_still_there() -> None:
    """check_connection connects with aiokafka's own connection (no public API does one
    connection with the configured security and raises its refusals as they are)."""
    import inspect

    from aiokafka.conn import AIOKafkaConnection, create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    used = {
        "host", "port", "client_id", "request_timeout_ms", "ssl_context", "security_protocol",
        "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
        "sasl_kerberos_service_name", "sasl_oauth_token_provider",
    }  # fmt: skip
    parameters = inspect.signature(create_conn).parameters
    assert used <= parameters.keys(), f"{RECHECK}: create_conn lost {used - parameters.keys()}"
    assert inspect.iscoroutinefunction(create_conn), RECHECK
    assert "request" in inspect.signature(AIOKafkaConnection.send).parameters, RECHECK
    assert callable(getattr(AIOKafkaConnection, "close", None)), RECHECK
    assert "topics" in inspect.signature(MetadataRequest).parameters, RECHECK
    MetadataRequest([])  # all topics' metadata: what check_connection sends


# Kafka's own murmur2 vectors (org.apache.kafka.common.utils.UtilsTest.testMurmur2), signed
# 32-bit as the Java client returns them
_JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("key", "java_hash"), _JAVA_MURMUR2)
@pytest.mark.parametrize("count", [1, 2, 3, 12, 50])
def test_a_key_lands_where_the_java_client_puts_it(key: bytes, java_hash: int, count: int) -> None:
    partitions = list(range(count))
    expected = (java_hash & 0x7FFFFFFF) % count  # Utils.toPositive(murmur2(key)) % count
    assert key_partition(key, partitions) == expected
    assert KeyPartitioner()(key, partitions, partitions) == expected


@given(
    key=st.binary(max_size=80),
    count=st.integers(min_value=1, max_value=64),
    offset=st.integers(min_value=0, max_value=5),
)
def test_the_partitioner_agrees_with_aiokafkas_default(key: bytes, count: int, offset: int) -> None:
    """Every producer of the worker uses it: a key must land where aiokafka's (and so every
    other client's) default partitioner puts it, or one subscriber's alerts would split."""
    every = list(range(offset, offset + count))  # partition ids as metadata lists them
    available = every[::2]
    assert KeyPartitioner()(key, every, available) == DefaultPartitioner()(key, every, available)


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    partitioner = KeyPartitioner()
    assert {partitioner(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)} == {1, 3}
    assert {partitioner(None, [0, 1], []) for _ in range(200)} == {0, 1}
