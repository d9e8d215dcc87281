"""The data path and topic settings (defaults: tests/unit/test_settings.py): read from the
environment; a bad value names its variable."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.settings import load_settings


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
