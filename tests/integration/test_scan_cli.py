"""``scamwatch scan`` end to end, as a user runs it: the bundled sample traffic against the
bundled sample feeds, with indicators from the real Redis and from feed files with no Redis,
checked against the traffic generator's ground truth (truth.jsonl)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.devtools.samples import SAMPLE_FEEDS_DIR, load_sample_feeds, sample_feeds
from engine.devtools.schemas import validate
from engine.store.redis import RedisStore

TRAFFIC = SAMPLE_FEEDS_DIR.parent / "traffic"
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there


def truth(stream: str) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in (TRAFFIC / "truth.jsonl").read_bytes().splitlines()]
    return [row for row in rows if row["stream"] == stream]


def expected_alerts(stream: str) -> set[tuple[str, str]]:
    return {(row["event_id"], rule) for row in truth(stream) for rule in row["rules"]}


def feed_args() -> list[str]:
    """--indicators/--allowlist for every bundled feed (TYPE:PATH for plain text)."""
    args: list[str] = []
    for feed in sample_feeds():
        spec = f"{feed.type_}:{feed.path}" if feed.type_ else str(feed.path)
        args += ["--allowlist" if feed.allowlist else "--indicators", spec]
    return args


def run_scan(args: list[str], **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "scan", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        timeout=120,
        check=False,
    )


def alerts_of(output: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines()]


def check_against_truth(stream: str, result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, result.stderr.decode()
    path = TRAFFIC / f"{stream}.jsonl"
    lines = path.read_bytes().splitlines()
    alerts = alerts_of(result.stdout)
    assert {(a["event_id"], a["rule"]) for a in alerts} == expected_alerts(stream)
    for alert in alerts:
        # offline source: the file name and the 1-based line number
        assert alert["source"]["topic"] == path.name
        assert alert["source"]["partition"] == 0
        assert alert["event"] == orjson.loads(lines[alert["source"]["offset"] - 1])
        assert alert["stream"] == stream
        validate("alert.v1", alert)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    stderr = result.stderr.decode()
    bad = [row for row in truth(stream) if row["deadletter"]]
    assert bad, "the sample traffic carries malformed lines"
    for row in bad:  # every bad line is reported with its number and reason, and skipped
        assert f"{path.name}:{row['line'] + 1}: {row['deadletter']}" in stderr
    assert re.search(rf"invalid\s+│\s+{len(bad)}\s+│", stderr)


@pytest.mark.parametrize("stream", ["calls", "web"])
def test_scan_with_feed_files_needs_no_redis(stream: str) -> None:
    result = run_scan(
        [str(TRAFFIC / f"{stream}.jsonl"), "--stream", stream, *feed_args()],
        SCAMWATCH_REDIS_URL=NO_REDIS,
    )
    check_against_truth(stream, result)


def load_samples_into(store: RedisStore) -> None:
    for _feed, report in load_sample_feeds(store):
        assert report.valid


@pytest.mark.stack
@pytest.mark.parametrize("stream", ["calls", "web"])
def test_scan_with_indicators_from_redis(stream: str, redis_url: str, key_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    load_samples_into(store)
    result = run_scan(
        [str(TRAFFIC / f"{stream}.jsonl"), "--stream", stream],
        SCAMWATCH_REDIS_URL=redis_url,
        SCAMWATCH_REDIS_PREFIX=key_prefix,
    )
    check_against_truth(stream, result)
    versions = {a["engine"]["indicator_version"] for a in alerts_of(result.stdout)}
    assert versions == {store.version()}
    assert f"Redis (version {store.version()})" in result.stderr.decode()


@pytest.mark.stack
def test_allowlist_file_on_top_of_redis(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    load_samples_into(store)
    version = store.version()
    allow = tmp_path / "fp_fix.txt"
    allow.write_text("microsoft-support-helpline.example\n")
    args = [str(TRAFFIC / "web.jsonl"), "--stream", "web"]
    env = {"SCAMWATCH_REDIS_URL": redis_url, "SCAMWATCH_REDIS_PREFIX": key_prefix}
    before = alerts_of(run_scan(args, **env).stdout)
    after_run = run_scan([*args, "--allowlist", f"domain:{allow}"], **env)
    assert after_run.returncode == 0, after_run.stderr.decode()
    after = alerts_of(after_run.stdout)

    def hits(alerts: list[dict[str, Any]]) -> set[str]:
        return {
            a["alert_id"]
            for a in alerts
            if any("microsoft-support-helpline.example" in m["normalized"] for m in a["matches"])
        }

    assert hits(before)
    assert not hits(after)
    assert {a["alert_id"] for a in after} == {a["alert_id"] for a in before} - hits(before)
    # the extra allowlist lives only in the scan: the store did not change
    assert store.version() == version
    assert {a["engine"]["indicator_version"] for a in after} == {version}


def test_output_file_and_rerun_gives_the_same_alert_ids(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    args = [str(TRAFFIC / "calls.jsonl"), "--stream", "calls", *feed_args(), "--output", str(out)]
    first = run_scan(args, SCAMWATCH_REDIS_URL=NO_REDIS)
    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout == b""
    ids = [a["alert_id"] for a in alerts_of(out.read_bytes())]
    assert ids
    second = run_scan(args, SCAMWATCH_REDIS_URL=NO_REDIS)
    assert [a["alert_id"] for a in alerts_of(out.read_bytes())] == ids
    assert second.returncode == 0


def test_gzipped_events_are_read(tmp_path: Path) -> None:
    packed = tmp_path / "calls.jsonl.gz"
    packed.write_bytes(gzip.compress((TRAFFIC / "calls.jsonl").read_bytes()))
    result = run_scan(
        [str(packed), "--stream", "calls", *feed_args()], SCAMWATCH_REDIS_URL=NO_REDIS
    )
    assert result.returncode == 0, result.stderr.decode()
    alerts = alerts_of(result.stdout)
    assert {(a["event_id"], a["rule"]) for a in alerts} == expected_alerts("calls")
    assert {a["source"]["topic"] for a in alerts} == {"calls.jsonl.gz"}


def test_unreachable_redis_without_feed_files_fails_clearly() -> None:
    result = run_scan(
        [str(TRAFFIC / "calls.jsonl"), "--stream", "calls"], SCAMWATCH_REDIS_URL=NO_REDIS
    )
    assert result.returncode == 2
    assert "error" in result.stderr.decode().lower()
    assert result.stdout == b""


def test_missing_feed_file_and_bad_region_are_usage_errors(tmp_path: Path) -> None:
    events = str(TRAFFIC / "calls.jsonl")
    missing = run_scan(
        [events, "--stream", "calls", "--indicators", str(tmp_path / "nope.csv")],
        SCAMWATCH_REDIS_URL=NO_REDIS,
    )
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr.decode()
    region = run_scan(
        [events, "--stream", "calls", *feed_args(), "--region", "XX"],
        SCAMWATCH_REDIS_URL=NO_REDIS,
    )
    assert region.returncode == 2
    assert "--region" in region.stderr.decode()


def test_feed_errors_are_reported_and_the_scan_goes_on(tmp_path: Path) -> None:
    feed = tmp_path / "numbers.txt"
    feed.write_text("+1 800 555 0199\nnot a number\n")
    events = tmp_path / "calls.jsonl"
    events.write_bytes(
        b'{"event_id":"a","ts":1767225600000,"partner_id":"p","caller":"x","callee":"18005550199"}\n'
        b"\n"
        b'{"event_id":"b","ts":1767225600000,"partner_id":"p","caller":"anonymous"}\n'
    )
    result = run_scan(
        [str(events), "--stream", "calls", "--indicators", f"phone:{feed}"],
        SCAMWATCH_REDIS_URL=NO_REDIS,
    )
    assert result.returncode == 0, result.stderr.decode()
    [alert] = alerts_of(result.stdout)
    assert (alert["rule"], alert["severity"], alert["source"]["offset"]) == (
        "callee_scam_number",
        "high",
        1,
    )
    stderr = result.stderr.decode()
    assert "numbers.txt:2" in stderr  # the bad feed line, by number
    assert "calls.jsonl:3: schema_violation: callee" in stderr


def test_scan_judges_a_line_as_the_worker_does(tmp_path: Path) -> None:
    """An extra field orjson cannot read (1e400) is no reason to drop a scam call: the worker
    alerts on it, and so must a retro-hunt over the same record."""
    feed = tmp_path / "numbers.txt"
    feed.write_text("+1 800 555 0199\n")
    events = tmp_path / "calls.jsonl"
    events.write_bytes(
        b'{"event_id": "c-1", "ts": 1795867200000, "partner_id": "p", "caller": "anonymous",'
        b' "callee": "1-800-555-0199", "vendor_score": 1e400}\n'
    )
    result = run_scan(
        [str(events), "--stream", "calls", "--indicators", f"phone:{feed}"],
        SCAMWATCH_REDIS_URL=NO_REDIS,
    )
    assert result.returncode == 0, result.stderr.decode()
    alerts = alerts_of(result.stdout)
    assert [(a["event_id"], a["rule"]) for a in alerts] == [("c-1", "callee_scam_number")]
    assert alerts[0]["event"]["vendor_score"] == "1e400"
    validate("alert.v1", alerts[0])
