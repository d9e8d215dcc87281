"""`stack down` stops only what `stack up` recorded, and only the parts it is asked to;
a pid file whose process is gone, or is some other program, is not ours. Kafka cluster ids
are made as Kafka makes them; a cluster's nodes take the ports and settings they should."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.devtools import stack
from engine.errors import StackError
from engine.settings import Settings, load_settings

SLEEPER = "import sys, time; time.sleep(120)"


def _wait_exec(pid: int, marker: str) -> None:
    """Until the child has exec'd, its command line is still pytest's."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    for _ in range(200):
        if marker.encode() in cmdline.read_bytes():
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never showed {marker!r} in its command line")


@pytest.fixture
def state(tmp_path: Path) -> Settings:
    return load_settings(stack={"state_dir": str(tmp_path)})


@pytest.fixture
def fake_parts(state: Settings) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Two harmless processes whose command lines look like our broker and Redis."""
    procs = {
        "kafka": subprocess.Popen([sys.executable, "-c", SLEEPER, "kafka.Kafka"]),
        "redis": subprocess.Popen([sys.executable, "-c", SLEEPER, "redis-server"]),
    }
    for name, proc in procs.items():
        _wait_exec(proc.pid, "kafka.Kafka" if name == "kafka" else "redis-server")
        (Path(state.stack.state_dir) / f"{name}.pid").write_text(str(proc.pid))
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def test_down_only_stops_the_parts_named(
    state: Settings, fake_parts: dict[str, subprocess.Popen[bytes]]
) -> None:
    stopped = stack.stack_down(state, report=lambda _: None, only=["redis"])
    assert stopped == ["redis"]
    assert fake_parts["redis"].wait(timeout=10) is not None
    assert fake_parts["kafka"].poll() is None
    assert (Path(state.stack.state_dir) / "kafka.pid").exists()
    assert not (Path(state.stack.state_dir) / "redis.pid").exists()


def test_down_stops_everything_it_started(
    state: Settings, fake_parts: dict[str, subprocess.Popen[bytes]]
) -> None:
    assert stack.stack_down(state, report=lambda _: None) == ["kafka", "redis"]
    for proc in fake_parts.values():
        assert proc.wait(timeout=10) is not None


def test_a_recycled_pid_is_not_ours(state: Settings) -> None:
    other = subprocess.Popen([sys.executable, "-c", SLEEPER, "something-else"])
    try:
        _wait_exec(other.pid, "something-else")
        (Path(state.stack.state_dir) / "kafka.pid").write_text(str(other.pid))
        messages: list[str] = []
        assert stack.stack_down(state, report=messages.append) == []
        assert other.poll() is None
        assert any("kafka: not started by scamwatch" in m for m in messages)
    finally:
        other.kill()
        other.wait()


# ------------------------------------------------------------------- Kafka ids and layouts

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$")


def test_new_cluster_ids_are_kafka_uuids() -> None:
    """Kafka's Uuid.randomUuid: a type 4 UUID, unpadded base64url, never starting with '-'."""
    ids = [stack.new_cluster_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        assert _ID.match(text), text
        raw = base64.urlsafe_b64decode(text + "==")
        assert uuid.UUID(bytes=raw).version == 4


def test_an_id_that_would_begin_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15), version=4)  # base64url of 0xf8... is "-..."
    plain = uuid.UUID(bytes=b"\x10" + bytes(15), version=4)
    draws = iter([dashed, plain])
    monkeypatch.setattr(stack.uuid, "uuid4", lambda: next(draws))
    assert base64.urlsafe_b64encode(dashed.bytes).startswith(b"-")
    assert stack.new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


def test_a_dash_cluster_id_goes_to_the_storage_tool_as_one_argument() -> None:
    cmd = stack.format_command("java", "libs/*", "-Zz9kq2WQf6GkQ2zGf1w0A", Path("s.properties"))
    assert "--cluster-id=-Zz9kq2WQf6GkQ2zGf1w0A" in cmd
    assert "-t" not in cmd and "-Zz9kq2WQf6GkQ2zGf1w0A" not in cmd


def test_a_cluster_takes_consecutive_ports_and_controllers_ports_of_their_own(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        stack={"state_dir": str(tmp_path)}, kafka={"bootstrap": "127.0.0.1:19092"}
    )
    layout = stack.kafka_layout(settings, brokers=3, secure=True)
    assert [n.name for n in layout.nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.port for n in layout.nodes] == [19092, 19093, 19094]
    assert [n.controller_port for n in layout.nodes] == [19095, 19096, 19097]
    assert [n.ssl_port for n in layout.nodes] == [19098, 19099, 19100]
    assert [n.internal_port for n in layout.nodes] == [19101, 19102, 19103]
    assert (layout.replication, layout.min_insync) == (3, 2)
    single = stack.kafka_layout(load_settings(stack={"state_dir": str(tmp_path / "one")}))
    assert [(n.name, n.port, n.controller_port) for n in single.nodes] == [("kafka", 9092, 9093)]
    assert single.nodes[0].directory == tmp_path / "one" / "kafka"  # the layout it always had


def test_a_bootstrap_listing_every_broker_gives_their_ports(tmp_path: Path) -> None:
    listed = "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    settings = load_settings(stack={"state_dir": str(tmp_path)}, kafka={"bootstrap": listed})
    layout = stack.kafka_layout(settings)
    assert [n.address for n in layout.nodes] == listed.split(",")
    assert [n.controller_port for n in layout.nodes] == [19097, 19098, 19099]
    with pytest.raises(StackError, match="lists 3 addresses for 2 brokers"):
        stack.kafka_layout(settings, brokers=2)
    assert [n.address for n in stack.kafka_layout(settings, brokers=1).nodes] == [listed[:15]]


def test_the_state_directory_keeps_its_layout(tmp_path: Path) -> None:
    settings = load_settings(stack={"state_dir": str(tmp_path)})
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "stack.json").write_text('{"brokers": 3, "secure": false}')
    assert stack.kafka_layout(settings).brokers == 3
    for brokers, secure in ((1, None), (3, True)):
        with pytest.raises(StackError, match="holds a 3-broker stack"):
            stack.kafka_layout(settings, brokers=brokers, secure=secure)
    with pytest.raises(StackError, match="there is no broker 4"):
        stack.kafka_part_name(settings, 4)


def test_cluster_config_replicates_and_listens_on_loopback_only(tmp_path: Path) -> None:
    settings = load_settings(
        stack={"state_dir": str(tmp_path)}, kafka={"bootstrap": "127.0.0.1:19092"}
    )
    layout = stack.kafka_layout(settings, brokers=3)
    node = layout.node(2)
    node.directory.mkdir(parents=True)
    props = dict(
        line.split("=", 1)
        for line in stack._kafka_config(layout, node).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19095,2@127.0.0.1:19096,3@127.0.0.1:19097"
    )
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    hosts = re.findall(r"//([^:]+):", props["listeners"] + "," + props["advertised.listeners"])
    assert hosts and set(hosts) == {"127.0.0.1"}


def test_down_stops_one_broker_alone(tmp_path: Path) -> None:
    settings = load_settings(
        stack={"state_dir": str(tmp_path)}, kafka={"bootstrap": "127.0.0.1:19092"}
    )
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "stack.json").write_text('{"brokers": 3, "secure": false}')
    procs = {
        f"kafka-{i}": subprocess.Popen([sys.executable, "-c", SLEEPER, "kafka.Kafka"])
        for i in (1, 2, 3)
    }
    try:
        for name, proc in procs.items():
            _wait_exec(proc.pid, "kafka.Kafka")
            (tmp_path / f"{name}.pid").write_text(str(proc.pid))
        only = [stack.kafka_part_name(settings, 2)]
        assert stack.stack_down(settings, report=lambda _: None, only=only) == ["kafka-2"]
        assert procs["kafka-2"].wait(timeout=10) is not None
        assert procs["kafka-1"].poll() is None and procs["kafka-3"].poll() is None
        assert stack.stack_down(settings, report=lambda _: None) == ["kafka-1", "kafka-3"]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
