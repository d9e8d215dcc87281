"""The data path and topic settings (defaults: tests/unit/test_settings.py): read from the
environment; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from engine.errors import ConfigError
from engine.kafka_io import KeyPartitioner
from engine.settings import load_settings
from engine.stream.app import METADATA_MAX_AGE_MS, Dispatcher, create_app
from engine.stream.follower import IndicatorFollower


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_DATA_PATH", "agents")
    monkeypatch.setenv("SCAMWATCH_CREATE_TOPICS", "false")
    monkeypatch.setenv("SCAMWATCH_TOPIC_PARTITIONS", "24")
    monkeypatch.setenv("SCAMWATCH_TOPIC_REPLICATION", "3")
    s = load_settings()
    assert (s.worker.data_path, s.worker.create_topics, s.topics.partitions) == (
        "agents",
        False,
        24,
    )
    assert s.topics.replication == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCAMWATCH_DATA_PATH", "fast"),
        ("SCAMWATCH_CREATE_TOPICS", "perhaps"),
        ("SCAMWATCH_TOPIC_PARTITIONS", "0"),
        ("SCAMWATCH_TOPIC_REPLICATION", "0"),
        ("SCAMWATCH_TOPIC_SIGHTINGS", "bad topic!"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable


@pytest.mark.parametrize("data_path", ["inline", "agents"])
def test_new_topics_are_found_within_designs_5_s(tmp_path: Path, data_path: str) -> None:
    """DESIGN.md: a worker started before its topics exist consumes them within 5 s of their
    creation. That is the consumer's metadata refresh (a rejoin follows at once); the
    integration test (test_worker_topics.py) waits generously and prints the delay."""
    app = create_app(
        load_settings(),
        dispatcher=cast(Dispatcher, SimpleNamespace(handle=None)),  # unused before the start
        follower=cast(IndicatorFollower, object()),
        web_port=6066,  # never bound: the app is not started
        datadir=tmp_path,
        data_path=data_path,
    )
    assert app.conf.consumer_metadata_max_age_ms == METADATA_MAX_AGE_MS
    assert METADATA_MAX_AGE_MS <= 2_500  # half of DESIGN's 5 s, the rest for the rejoin


@pytest.mark.parametrize("data_path", ["inline", "agents"])
def test_the_workers_producer_partitions_keys_with_the_c_hash(
    tmp_path: Path, data_path: str
) -> None:
    """Alerts and sightings are sent keyed through Faust's producer: it is given the
    partitioner through Faust's public ``producer_partitioner`` setting, and passes it on."""
    app = create_app(
        load_settings(),
        dispatcher=cast(Dispatcher, SimpleNamespace(handle=None)),
        follower=cast(IndicatorFollower, object()),
        web_port=6066,
        datadir=tmp_path,
        data_path=data_path,
    )
    assert isinstance(app.conf.producer_partitioner, KeyPartitioner)
    assert app.producer.partitioner is app.conf.producer_partitioner
