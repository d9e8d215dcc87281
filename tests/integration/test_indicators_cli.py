"""``scamwatch indicators`` against the real local Redis, under a key prefix of each test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
import typer
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

from engine.cli import indicators
from engine.core.feeds import read_feed
from engine.core.models import Indicator, IndicatorType, now_ms
from engine.devtools.samples import sample_feeds
from engine.store.redis import RedisStore

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    indicators.register(root)
    return root


@pytest.fixture
def run(
    app: typer.Typer, key_prefix: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Invoke]:
    # a wide terminal, so that table cells are not folded
    monkeypatch.setattr(indicators, "console", Console(width=240))
    monkeypatch.setattr(indicators, "err_console", Console(stderr=True, width=240))
    runner = CliRunner()

    def invoke(*args: str, prefix: str | None = None) -> Result:
        return runner.invoke(
            app, ["indicators", "--prefix", prefix or key_prefix, *args], catch_exceptions=False
        )

    yield invoke


def _row(table: str, name: str) -> str:
    """The value cell of the summary-table row called ``name``."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in\n{table}")


def _store(redis_client: redis.Redis, prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=prefix)


def test_load_reports_good_and_bad_lines(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    result = run("load", str(FEEDS / "indicators.csv"))
    assert result.exit_code == 0, result.output
    assert _row(result.stdout, "loaded (added / updated)") == "5 (5 / 0)"
    assert _row(result.stdout, "invalid") == "6"
    assert _row(result.stdout, "valid phone") == "2"
    assert _row(result.stdout, "valid domain") == "1"
    # each bad line with its line number and reason, on stderr
    assert "indicators.csv:6: type: unknown type 'fax'" in result.stderr
    assert "indicators.csv:8: confidence: 150 is outside 0-100" in result.stderr
    assert sum(line.startswith("invalid ") for line in result.stderr.splitlines()) == 6
    store = _store(redis_client, key_prefix)
    assert store.version() == 5
    phone = store.get(IndicatorType.PHONE, "+18885550142")
    assert phone is not None and phone.sources == ("indicators.csv",)


def test_reloading_the_same_feed_does_not_move_the_version(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    assert run("load", str(FEEDS / "stix_bundle.json")).exit_code == 0
    store = _store(redis_client, key_prefix)
    version = store.version()
    assert version == 6
    again = run("load", str(FEEDS / "stix_bundle.json"))
    assert again.exit_code == 0
    assert _row(again.stdout, "loaded (added / updated)") == "0 (0 / 0)"
    assert _row(again.stdout, "unchanged") == "6"
    assert store.version() == version
    assert _row(again.stdout, "version") == f"{version} → {version}"


@pytest.mark.parametrize(
    ("feed", "extra", "loaded"),
    [
        ("indicators.csv", [], 5),
        ("domains.txt", ["--type", "domain"], 4),  # two spellings of one IDN are one entry
        ("indicators.jsonl", [], 3),
        ("stix_bundle.json", [], 6),
        ("misp_event.json", ["--format", "misp"], 5),
    ],
)
def test_strict_writes_nothing_when_a_line_is_bad(
    run: Invoke,
    redis_client: redis.Redis,
    key_prefix: str,
    feed: str,
    extra: list[str],
    loaded: int,
) -> None:
    result = run("load", str(FEEDS / feed), *extra, "--strict")
    assert result.exit_code == 1
    assert "nothing written" in result.stderr
    assert list(redis_client.scan_iter(match=f"{key_prefix}*")) == []
    relaxed = run("load", str(FEEDS / feed), *extra)
    assert relaxed.exit_code == 0, relaxed.output
    assert _store(redis_client, key_prefix).version() == loaded


def test_strict_loads_a_clean_feed(
    run: Invoke, redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    feed = tmp_path / "clean.txt"
    feed.write_text("# two numbers\n+1 800 555 0199\n(888) 555-0142\n")
    result = run("load", str(feed), "--type", "phone", "--strict", "--source", "team")
    assert result.exit_code == 0, result.output
    entries = list(_store(redis_client, key_prefix).iter())
    assert sorted(e.value for e in entries) == ["+18005550199", "+18885550142"]
    assert all(e.sources == ("team",) for e in entries)


def test_region_reads_national_numbers(
    run: Invoke, redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    feed = tmp_path / "uk.txt"
    feed.write_text("020 7946 0958\n")
    bad_region = run("load", str(feed), "--type", "phone", "--region", "XX")
    assert bad_region.exit_code == 2 and "--region" in bad_region.stderr
    assert run("load", str(feed), "--type", "phone", "--region", "gb").exit_code == 0
    values = [i.value for i in _store(redis_client, key_prefix).iter()]
    assert values == ["+442079460958"]


def test_export_load_export_round_trip(run: Invoke, key_prefix: str, tmp_path: Path) -> None:
    feeds: list[tuple[str, IndicatorType | None]] = [
        ("indicators.csv", None),
        ("indicators.jsonl", None),
        ("stix_bundle.json", None),
        ("misp_event.json", None),
        ("domains.txt", IndicatorType.DOMAIN),
    ]
    keys = set()
    for feed, type_ in feeds:
        extra = ["--type", type_.value] if type_ else []
        assert run("load", str(FEEDS / feed), *extra).exit_code == 0
        keys |= {i.key for i in read_feed(FEEDS / feed, type_=type_) if isinstance(i, Indicator)}
    # the same phone from a second source: the export must keep both sources
    assert run("add", "phone", "+1 (800) 555-0199", "--source", "second").exit_code == 0
    first = run("export")
    assert first.exit_code == 0
    lines = first.stdout_bytes.splitlines()
    assert len(lines) == len(keys)
    records = [orjson.loads(line) for line in lines]
    assert {(IndicatorType(r["type"]), r["value"]) for r in records} == keys
    phone = next(r for r in records if r["value"] == "+18005550199")
    assert phone["sources"] == ["ftc", "second"] and phone["source"] == "ftc"

    exported = tmp_path / "export.jsonl"
    exported.write_bytes(first.stdout_bytes)
    other_prefix = f"{key_prefix}copy:"
    loaded = run("load", str(exported), "--format", "jsonl", prefix=other_prefix)
    assert loaded.exit_code == 0, loaded.output
    assert _row(loaded.stdout, "loaded (added / updated)") == f"{len(keys)} ({len(keys)} / 0)"
    second = run("export", prefix=other_prefix)
    assert second.stdout_bytes == first.stdout_bytes  # byte-identical
    # loading the export back where it came from changes nothing
    back = run("load", str(exported))
    assert _row(back.stdout, "loaded (added / updated)") == "0 (0 / 0)"
    assert _row(back.stdout, "unchanged") == str(len(keys))


def test_add_remove_list_stats(run: Invoke, redis_client: redis.Redis, key_prefix: str) -> None:
    added = run(
        "add",
        "phone",
        "(800) 555-0199",
        "--severity",
        "critical",
        "--confidence",
        "90",
        "--tag",
        "microsoft",
        "--tag",
        "callback",
        "--valid-until",
        "2030-01-01T00:00:00Z",
    )
    assert added.exit_code == 0, added.output
    assert "added: phone +18005550199" in added.stdout
    store = _store(redis_client, key_prefix)
    entry = store.get(IndicatorType.PHONE, "+18005550199")
    assert entry is not None
    assert entry.sources == ("cli",) and entry.tags == ("callback", "microsoft")
    assert entry.confidence == 90 and entry.valid_until == 1_893_456_000_000
    weaker = ("--confidence", "10", "--valid-until", "2029-01-01T00:00:00Z")
    assert "unchanged" in run("add", "phone", "+18005550199", *weaker).stdout
    assert store.version() == 1
    # a report with no end widens the validity window (Indicator.merge)
    assert "updated" in run("add", "phone", "+18005550199").stdout
    widened = store.get(IndicatorType.PHONE, "+18005550199")
    assert widened is not None and widened.valid_until is None and widened.confidence == 90

    assert run("add", "domain", "Microsoft.COM.", "--allowlist").exit_code == 0
    assert run("add", "keyword", "amazon-refund", "--source", "brand").exit_code == 0
    bad = run("add", "phone", "not a number")
    assert bad.exit_code == 2 and "value:" in bad.stderr

    listed = run("list")
    assert "+18005550199" in listed.stdout and "amazon-refund" in listed.stdout
    assert "microsoft.com" not in listed.stdout
    assert "microsoft.com" in run("list", "--allowlist").stdout
    only = run("list", "--type", "keyword")
    assert "amazon-refund" in only.stdout and "+18005550199" not in only.stdout
    by_source = run("list", "--source", "brand")
    assert "amazon-refund" in by_source.stdout and "+18005550199" not in by_source.stdout

    stats = run("stats")
    assert stats.exit_code == 0
    assert "version 4" in stats.stdout
    assert "brand" in stats.stdout and "cli" in stats.stdout

    removed = run("remove", "phone", "+1 800 555 0199")
    assert removed.exit_code == 0 and "removed: phone +18005550199" in removed.stdout
    assert store.get(IndicatorType.PHONE, "+18005550199") is None
    missing = run("remove", "phone", "+1 800 555 0199")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert run("remove", "domain", "microsoft.com").exit_code == 1  # it is on the allowlist
    assert run("remove", "domain", "microsoft.com", "--allowlist").exit_code == 0


def test_sample_feeds_load_and_show_normalized_values(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    for feed in sample_feeds():
        args = ["load", str(feed.path), "--format", feed.format]
        if feed.type_:
            args += ["--type", feed.type_.value]
        if feed.source:
            args += ["--source", feed.source]
        if feed.allowlist:
            args.append("--allowlist")
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert _row(result.stdout, "invalid") == "0" and result.stderr == ""
    exported = run("export").stdout
    assert '"value":"+18885550142"' in exported  # written as (888) 555-0142
    assert '"value":"xn--mcrosoft-support-9vn.example"' in exported  # Cyrillic і
    assert '"value":"windows-helpdesk-247.example"' in exported  # upper case, trailing dot
    allow = run("export", "--allowlist").stdout
    assert '"value":"+18006427676"' in allow and '"value":"aws.amazon.com"' in allow
    stats = run("stats").stdout
    assert "expired (not yet purged)" in stats
    store = _store(redis_client, key_prefix)
    assert store.stats(now_ms()).expired == 1  # the sample's old campaign number
    assert f"indicator store (version {store.version()})" in stats
    purged = run("purge")
    assert purged.exit_code == 0 and "purged 1 expired entries" in purged.stdout
    assert store.stats(now_ms()).expired == 0
    assert store.get(IndicatorType.PHONE, "+18005550100") is None


def test_redis_down_is_one_clear_line(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_REDIS_URL", "redis://127.0.0.1:1/0")
    try:
        result = CliRunner().invoke(app, ["indicators", "stats"])
    finally:
        monkeypatch.undo()
    assert result.exit_code == 2
    assert result.stderr.startswith("error: indicator store (Redis) unreachable")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_redis_down_through_the_real_command(tmp_path: Path) -> None:
    env = {**os.environ, "SCAMWATCH_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from engine.cli import main; main()",
            "indicators",
            "load",
            str(FEEDS / "indicators.csv"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
