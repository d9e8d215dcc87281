"""The Redis part of the local stack without running it: a Redis Cluster's nodes take
consecutive ports and directories of their own, the state directory remembers its layout,
and the secured variant's server command and ACL file hold no password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.devtools import stack
from engine.errors import StackError
from engine.settings import Settings, load_settings


def _settings(tmp_path: Path, url: str = "redis://127.0.0.1:17379/0") -> Settings:
    return load_settings(stack={"state_dir": str(tmp_path)}, redis={"url": url})


def test_a_cluster_takes_consecutive_ports_from_the_url(tmp_path: Path) -> None:
    layout = stack.redis_layout(_settings(tmp_path), nodes=3)
    assert [(n.name, n.port, n.bus_port) for n in layout.nodes] == [
        ("redis-1", 17379, 27379),
        ("redis-2", 17380, 27380),
        ("redis-3", 17381, 27381),
    ]
    assert [n.directory for n in layout.nodes] == [
        tmp_path.resolve() / "redis" / f"node-{i}" for i in (1, 2, 3)
    ]
    command = stack._redis_command("redis-server", layout, layout.nodes[1])
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert flags["--port"] == "17380" and flags["--bind"] == "127.0.0.1"
    assert flags["--cluster-enabled"] == "yes" and flags["--cluster-port"] == "27380"
    assert flags["--cluster-config-file"] == "nodes.conf"
    assert flags["--cluster-require-full-coverage"] == "no"


def test_one_node_is_the_plain_redis_as_before(tmp_path: Path) -> None:
    layout = stack.redis_layout(_settings(tmp_path))
    [node] = layout.nodes
    assert (node.name, node.port, node.directory) == ("redis", 17379, tmp_path.resolve() / "redis")
    assert "--cluster-enabled" not in stack._redis_command("redis-server", layout, node)


@pytest.mark.parametrize("nodes", [2, 0])
def test_a_cluster_needs_three_masters(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(StackError, match="at least 3 masters"):
        stack.redis_layout(_settings(tmp_path), nodes=nodes)


def test_the_state_directory_remembers_its_layout(tmp_path: Path) -> None:
    root = tmp_path / "redis"
    root.mkdir()
    (root / "stack.json").write_text(json.dumps({"nodes": 3, "secure": True}))
    settings = _settings(tmp_path)
    layout = stack.redis_layout(settings)
    assert (layout.count, layout.secure) == (3, True)
    with pytest.raises(StackError, match="holds a 3-node secured Redis"):
        stack.redis_layout(settings, nodes=1)
    assert stack.redis_part_name(settings, 2) == "redis-2"
    with pytest.raises(StackError, match="no Redis node 4"):
        stack.redis_part_name(settings, 4)


def test_the_secured_server_gets_no_password_on_its_command_line(tmp_path: Path) -> None:
    password = "pw-on-no-command-line"
    settings = _settings(tmp_path, f"rediss://alice:{password}@127.0.0.1:17479/0")
    layout = stack.redis_layout(settings, nodes=3, secure=True)
    layout.tls_dir.mkdir(parents=True)
    (layout.tls_dir / "server.pem").write_text("")  # certificates made already: skip openssl
    messages: list[str] = []
    stack._redis_secure_setup(settings, layout, messages.append)
    assert password not in "".join(messages)
    acl = layout.acl_file.read_text()
    assert acl.startswith("user default off\nuser alice on #") and password not in acl
    assert stack._redis_credentials(layout) == ("alice", password)
    command = stack._redis_command("redis-server", layout, layout.nodes[0])
    assert password not in " ".join(command)
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert (flags["--port"], flags["--tls-port"], flags["--tls-cluster"]) == ("0", "17479", "yes")
    assert flags["--aclfile"] == str(layout.acl_file)
    assert layout.client_env.stat().st_mode & 0o077 == 0
