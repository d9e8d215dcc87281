"""Settings: defaults from DESIGN.md, bad values stop with the variable's name, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.settings import load_settings


def test_defaults_follow_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP", "REDIS_URL", "DEFAULT_REGION", "APP_ID", "TOPIC_ALERTS"):
        monkeypatch.delenv(f"SCAMWATCH_{name}", raising=False)
    s = load_settings()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.redis.url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert s.processing.default_region == "US"
    assert (s.topics.calls, s.topics.web, s.topics.alerts, s.topics.deadletter) == (
        "calls",
        "web",
        "alerts",
        "deadletter",
    )
    assert s.worker.app_id == "scamwatch"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_KAFKA_BOOTSTRAP", "10.0.0.1:9092, 10.0.0.2:9092")
    monkeypatch.setenv("SCAMWATCH_DEFAULT_REGION", "gb")
    monkeypatch.setenv("SCAMWATCH_TOPIC_ALERTS", "soc.alerts")
    s = load_settings()
    assert s.kafka.bootstrap == "10.0.0.1:9092,10.0.0.2:9092"
    assert s.kafka.broker_urls == ["kafka://10.0.0.1:9092", "kafka://10.0.0.2:9092"]
    assert s.processing.default_region == "GB"
    assert s.topics.alerts == "soc.alerts"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SCAMWATCH_DEFAULT_REGION", "XX", "region"),
        ("SCAMWATCH_KAFKA_BOOTSTRAP", "no-port-here", "host:port"),
        ("SCAMWATCH_REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("SCAMWATCH_METRICS_PORT", "70000", "65535"),
        ("SCAMWATCH_METRICS_PORT", "abc", "integer"),
        ("SCAMWATCH_TOPIC_CALLS", "bad topic!", "topic"),
        ("SCAMWATCH_KAFKA_SECURITY_PROTOCOL", "TELNET", "SASL_SSL"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert variable in str(info.value)
    assert words in str(info.value)


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_REDIS_URL", "redis://default:s3cr3t-pw@127.0.0.1:6379/0")
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_PASSWORD", "kafka-s3cr3t")
    s = load_settings()
    shown = f"{s!r} {s} {s.redacted()}"
    assert "s3cr3t-pw" not in shown
    assert "kafka-s3cr3t" not in shown
    assert s.redacted()["SCAMWATCH_REDIS_URL"] == "redis://default:****@127.0.0.1:6379/0"
    assert s.redacted()["SCAMWATCH_KAFKA_SASL_PASSWORD"] == "**********"
    assert s.redis.url.get_secret_value().endswith("s3cr3t-pw@127.0.0.1:6379/0")


def test_sasl_mechanism_accepts_only_what_kafka_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "SCAMWATCH_KAFKA_SASL_MECHANISM"
    assert "SCRAM-SHA-512" in str(info.value)


def test_sasl_without_a_username_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_MECHANISM", "scram-sha-256")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "SCAMWATCH_KAFKA_SASL_USERNAME"


def test_one_kafka_connection_for_aiokafka_and_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_USERNAME", "scamwatch")
    monkeypatch.setenv("SCAMWATCH_KAFKA_SASL_PASSWORD", "pw")
    kafka = load_settings().kafka
    options = kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("scamwatch", "pw")
    assert options["ssl_context"] is not None
    credentials = kafka.faust_credentials()
    assert credentials is not None
    assert credentials.mechanism.value == "SCRAM-SHA-512"  # type: ignore[attr-defined]
    assert credentials.username == "scamwatch"  # type: ignore[attr-defined]
    plain = load_settings(kafka={"security_protocol": "PLAINTEXT"}).kafka
    assert plain.faust_credentials() is None
    assert "ssl_context" not in plain.client_options()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SCAMWATCH_TOPIC_PARTITIONS", "0"), ("SCAMWATCH_TOPIC_REPLICATION", "0")],
)
def test_topic_creation_counts_are_at_least_one(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable


def test_new_settings_defaults() -> None:
    s = load_settings()
    assert (s.topics.sightings, s.topics.partitions, s.topics.replication) == ("sightings", 8, 1)
    assert (s.worker.data_path, s.worker.create_topics) == ("inline", True)
    assert "SCAMWATCH_DATA_PATH" in s.env_names()


def test_protection_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().protection.protection is True
    monkeypatch.setenv("SCAMWATCH_PROTECTION", "false")
    assert load_settings().protection.protection is False


def test_gc_freeze_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().worker.gc_freeze is True
    monkeypatch.setenv("SCAMWATCH_GC_FREEZE", "false")
    assert load_settings().worker.gc_freeze is False


def test_errors_print_where_they_came_from() -> None:
    from engine.core.models import SourcePosition
    from engine.errors import DecodeError, FeedError

    position = SourcePosition("calls", 3, 1234)
    assert str(DecodeError("invalid_json", "record: x", source=position)).startswith(
        "calls[3]@1234: invalid_json"
    )
    assert str(FeedError("bad value", file="feed.csv", line=12)) == "feed.csv:12: bad value"
    assert str(ConfigError("SCAMWATCH_APP_ID", "bad")) == "SCAMWATCH_APP_ID: bad"


def test_redis_ca_file_needs_tls_and_an_existing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SCAMWATCH_REDIS_URL", "rediss://u:pw@127.0.0.1:6380/0")
    monkeypatch.setenv("SCAMWATCH_REDIS_CA_FILE", str(ca))
    assert load_settings().redis.client_options() == {"ssl_ca_certs": str(ca)}
    monkeypatch.setenv("SCAMWATCH_REDIS_CA_FILE", "")  # empty: unset, the system CAs
    assert load_settings().redis.client_options() == {}
    for url, ca_file, reason in (
        ("rediss://127.0.0.1:6380/0", str(tmp_path / "missing.pem"), "no such file"),
        ("redis://127.0.0.1:6379/0", str(ca), "rediss://"),
    ):
        monkeypatch.setenv("SCAMWATCH_REDIS_URL", url)
        monkeypatch.setenv("SCAMWATCH_REDIS_CA_FILE", ca_file)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert info.value.setting == "SCAMWATCH_REDIS_CA_FILE" and reason in str(info.value)


def test_automatic_hunts_are_off_by_default_and_read_from_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RETROHUNT_SECONDS", "RETROHUNT_RATE"):
        monkeypatch.delenv(f"SCAMWATCH_{name}", raising=False)
    s = load_settings()
    assert (s.worker.retrohunt_seconds, s.worker.retrohunt_rate) == (0, 1_000)
    monkeypatch.setenv("SCAMWATCH_RETROHUNT_SECONDS", "3600")
    monkeypatch.setenv("SCAMWATCH_RETROHUNT_RATE", "2500")
    s = load_settings()
    assert (s.worker.retrohunt_seconds, s.worker.retrohunt_rate) == (3600, 2500)
    monkeypatch.setenv("SCAMWATCH_RETROHUNT_RATE", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SCAMWATCH_RETROHUNT_RATE" in str(info.value)
