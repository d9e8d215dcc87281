"""``scamwatch indicators pull taxii`` against a real TAXII 2.1 server: OASIS's medallion
with its memory backend, started here on a free loopback port with a configuration of this
test's own, into the real local Redis (a key prefix of each test's own)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
import typer
from click.testing import Result
from rich.console import Console
from taxii2client.v21 import Collection
from typer.testing import CliRunner

from engine.cli import indicators
from engine.core.models import IndicatorType
from engine.store.positions import PullPositions
from engine.store.redis import RedisStore

Invoke = Callable[..., Result]
T = IndicatorType
USER, PASSWORD = "analyst", "correct-horse-battery"
PAGE = 10  # the server's max_page_size: the 27 objects of a collection come in 3 pages
DOMAINS = 15
URLS = 10
STARTUP_SECONDS = 30


@dataclass(frozen=True)
class Taxii:
    api_root: str  # http://127.0.0.1:PORT/api1/
    read_only: str  # a collection the tests only read
    writable: str  # a collection one test adds objects to


def _indicator(number: int, pattern: str, created: str) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.UUID(int=number)}",
        "created": created,
        "modified": created,
        "name": f"indicator {number}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": created,
        "labels": ["tech-support-scam"],
        "confidence": 80,
    }


def _bundle_objects() -> list[dict[str, object]]:
    """15 domains, 10 URLs, one file hash (skipped) and one identity (context)."""
    objects: list[dict[str, object]] = []
    for i in range(DOMAINS):
        pattern = f"[domain-name:value = 'support-desk-{i}.example']"
        objects.append(_indicator(i + 1, pattern, f"2025-06-01T00:00:{i:02d}.000Z"))
    for i in range(URLS):
        pattern = f"[url:value = 'http://refund-{i}.example/claim']"
        objects.append(_indicator(100 + i, pattern, f"2025-06-01T00:01:{i:02d}.000Z"))
    hash_pattern = "[file:hashes.'SHA-256' = '" + "ab" * 32 + "']"
    objects.append(_indicator(200, hash_pattern, "2025-06-01T00:02:00.000Z"))
    objects.append(
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": f"identity--{uuid.UUID(int=300)}",
            "created": "2025-06-01T00:03:00.000Z",
            "modified": "2025-06-01T00:03:00.000Z",
            "name": "Test ISAC",
            "identity_class": "organization",
        }
    )
    return objects


def _collection(collection_id: str, title: str) -> dict[str, object]:
    objects = _bundle_objects()
    manifest = [
        {
            "id": obj["id"],
            "date_added": obj["created"],
            "version": obj["modified"],
            "media_type": "application/stix+json;version=2.1",
        }
        for obj in objects
    ]
    return {
        "id": collection_id,
        "title": title,
        "can_read": True,
        "can_write": True,
        "media_types": ["application/stix+json;version=2.1"],
        "objects": objects,
        "manifest": manifest,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def taxii(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Taxii]:
    """medallion on 127.0.0.1, a free port, stopped after the module's tests."""
    workdir = tmp_path_factory.mktemp("medallion")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    read_only, writable = str(uuid.uuid4()), str(uuid.uuid4())
    data = {
        "/discovery": {
            "title": "scamwatch test TAXII server",
            "default": f"{base}/api1/",
            "api_roots": [f"{base}/api1/"],
        },
        "api1": {
            "information": {
                "title": "Scam indicators",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10_000_000,
            },
            "status": [],
            "collections": [
                _collection(read_only, "Tech-support scam domains"),
                _collection(writable, "Writable scam feed"),
            ],
        },
    }
    (workdir / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module_class": "MemoryBackend",
            "module": "medallion.backends.memory_backend",
            "filename": str(workdir / "data.json"),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": PAGE},
    }
    (workdir / "config.json").write_text(json.dumps(config))
    log = (workdir / "medallion.log").open("wb")
    command = [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), str(workdir / "config.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"medallion exited: {(workdir / 'medallion.log').read_text()}")
            try:
                requests.get(f"{base}/taxii2/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"medallion did not answer on {base} in {STARTUP_SECONDS} s")
                time.sleep(0.2)
        yield Taxii(f"{base}/api1/", read_only, writable)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    indicators.register(root)
    return root


@pytest.fixture
def run(app: typer.Typer, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setattr(indicators, "console", Console(width=240))
    monkeypatch.setattr(indicators, "err_console", Console(stderr=True, width=240))
    monkeypatch.setenv("SCAMWATCH_TAXII_USERNAME", USER)
    monkeypatch.setenv("SCAMWATCH_TAXII_PASSWORD", PASSWORD)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            app, ["indicators", "--prefix", key_prefix, *args], catch_exceptions=False
        )

    yield invoke


def _row(table: str, name: str) -> str:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in\n{table}")


def _pulled(result: Result) -> str:
    """The "N object(s) in P page(s)" part of the pull's report."""
    for line in result.stdout.splitlines():
        if " object(s) in " in line:
            return line.split(": ", 1)[1].split(" added after")[0]
    raise AssertionError(f"no pull report in\n{result.stdout}")


def test_first_pull_loads_every_page_and_the_next_loads_nothing_new(
    run: Invoke, taxii: Taxii, redis_client: redis.Redis, key_prefix: str
) -> None:
    first = run("pull", "taxii", taxii.api_root, "--collection", taxii.read_only)
    assert first.exit_code == 0, first.output
    assert _pulled(first) == "27 object(s) in 3 page(s)"
    loaded = DOMAINS + URLS
    assert _row(first.stdout, "loaded (added / updated)") == f"{loaded} ({loaded} / 0)"
    assert _row(first.stdout, "skipped (not matched by scamwatch)") == "1"
    assert _row(first.stdout, "invalid") == "0"
    assert "skipped 1 × STIX observable not matched by scamwatch: file:hashes" in first.stderr
    store = RedisStore(redis_client, prefix=key_prefix)
    entries = {(i.type, i.value): i for i in store.iter()}
    assert len(entries) == loaded
    domain = entries[(T.DOMAIN, "support-desk-14.example")]
    assert domain.sources == (f"taxii:{taxii.read_only}",)
    assert domain.confidence == 80 and "tech-support-scam" in domain.tags
    assert (T.URL, "refund-9.example/claim") in entries
    # remembered in Redis under the prefix: the date the last object was added
    positions = PullPositions(redis_client, prefix=key_prefix)
    assert positions.get(taxii.api_root, taxii.read_only) is not None
    assert positions.get(taxii.api_root, taxii.read_only).startswith("2025-06-01T00:03:00")  # type: ignore[union-attr]

    second = run("pull", "taxii", taxii.api_root, "--collection", taxii.read_only)
    assert second.exit_code == 0, second.output
    assert _pulled(second) == "0 object(s) in 1 page(s)"
    assert _row(second.stdout, "loaded (added / updated)") == "0 (0 / 0)"
    assert store.version() == loaded


def test_added_after_overrides_the_remembered_position(
    run: Invoke, taxii: Taxii, redis_client: redis.Redis, key_prefix: str
) -> None:
    assert run("pull", "taxii", taxii.api_root, "--collection", taxii.read_only).exit_code == 0
    again = run(
        "pull", "taxii", taxii.api_root, "--collection", taxii.read_only,
        "--added-after", "2025-06-01T00:01:04Z",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    # URLs 5..9 (added 00:01:05..09), the file hash and the identity
    assert _pulled(again) == "7 object(s) in 1 page(s)"
    assert _row(again.stdout, "unchanged") == "5"
    positions = PullPositions(redis_client, prefix=key_prefix)
    assert positions.get(taxii.api_root, taxii.read_only).startswith("2025-06-01T00:03:00")  # type: ignore[union-attr]


def test_objects_added_to_the_server_are_the_only_ones_the_next_pull_loads(
    run: Invoke, taxii: Taxii, redis_client: redis.Redis, key_prefix: str
) -> None:
    first = run("pull", "taxii", taxii.api_root, "--collection", taxii.writable)
    assert first.exit_code == 0, first.output
    assert _pulled(first) == "27 object(s) in 3 page(s)"
    new = [
        _indicator(
            1000 + i, f"[domain-name:value = 'new-scam-{i}.example']", "2026-01-02T00:00:00Z"
        )
        for i in range(12)
    ]
    # medallion's Add Objects endpoint, through taxii2-client
    collection = Collection(
        f"{taxii.api_root}collections/{taxii.writable}/", user=USER, password=PASSWORD
    )
    status = collection.add_objects({"objects": new}, timeout=30)
    collection.close()
    assert status.success_count == 12
    third = run("pull", "taxii", taxii.api_root, "--collection", taxii.writable)
    assert third.exit_code == 0, third.output
    assert _pulled(third) == "12 object(s) in 2 page(s)"
    assert _row(third.stdout, "loaded (added / updated)") == "12 (12 / 0)"
    store = RedisStore(redis_client, prefix=key_prefix)
    assert store.get(T.DOMAIN, "new-scam-11.example") is not None
    assert store.version() == DOMAINS + URLS + 12
    last = run("pull", "taxii", taxii.api_root, "--collection", taxii.writable)
    assert _pulled(last) == "0 object(s) in 1 page(s)"


def test_wrong_password_names_the_setting(
    run: Invoke,
    taxii: Taxii,
    key_prefix: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCAMWATCH_TAXII_PASSWORD", "wrong")
    result = run("pull", "taxii", taxii.api_root, "--collection", taxii.read_only)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: SCAMWATCH_TAXII_PASSWORD: ")
    assert "401" in lines[0] and USER in lines[0] and "wrong" not in lines[0]
    assert RedisStore(redis_client, prefix=key_prefix).version() == 0
    monkeypatch.delenv("SCAMWATCH_TAXII_USERNAME")
    monkeypatch.delenv("SCAMWATCH_TAXII_PASSWORD")
    anonymous = run("pull", "taxii", taxii.api_root, "--collection", taxii.read_only)
    assert anonymous.exit_code == 2
    assert anonymous.stderr.startswith("error: SCAMWATCH_TAXII_USERNAME: ")


def test_unknown_collection_and_unreachable_server_are_one_line_each(
    run: Invoke, taxii: Taxii
) -> None:
    unknown = run("pull", "taxii", taxii.api_root, "--collection", "no-such-collection")
    assert unknown.exit_code == 2
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert "no collection 'no-such-collection'" in unknown.stderr
    assert taxii.read_only in unknown.stderr  # the collections that are there
    no_root = run("pull", "taxii", taxii.api_root.replace("api1", "api9"), "--collection", "x")
    assert no_root.exit_code == 2
    assert "no TAXII 2.1 API root" in no_root.stderr
    discovery = run("pull", "taxii", taxii.api_root.replace("api1", "taxii2"), "--collection", "x")
    assert discovery.exit_code == 2
    assert "is a TAXII discovery endpoint, not an API root" in discovery.stderr
    assert taxii.api_root in discovery.stderr  # the API root to use instead
    down = run("pull", "taxii", f"http://127.0.0.1:{_free_port()}/api1/", "--collection", "x")
    assert down.exit_code == 2
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "cannot reach the TAXII server" in down.stderr and "refused" in down.stderr
