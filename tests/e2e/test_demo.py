"""`scamwatch demo` end to end on the real local Kafka and Redis, with a real worker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import redis
from rich.console import Console

from engine.devtools.demo import DemoError, DemoOptions, run_demo, start_worker, wait_worker_ready
from engine.settings import Settings


def _topics(settings: Settings) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def listing() -> set[str]:
        admin = AIOKafkaAdminClient(**settings.kafka.client_options())
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listing())


def test_demo_summary_matches_the_truth(
    settings: Settings, kafka_bootstrap: str, redis_client: redis.Redis
) -> None:
    console = Console(record=True, width=160, force_terminal=False)
    result = run_demo(
        DemoOptions(quiet=True, calls=150, web=150, rate=1000), console=console, settings=settings
    )
    assert result.ok, result.error
    assert result.sent == {"calls": 150, "web": 150}
    # every input (the mixed traffic and the journey story) has exactly one verdict:
    # processed or dead-lettered
    assert result.story.events == 10
    assert sum(result.processed.values()) == 300 + result.story.events
    assert result.deadletters == result.expected_deadletters
    assert result.processed.get("deadletter") == sum(result.expected_deadletters.values()) > 0
    assert result.not_json >= 1  # non-JSON lines were sent as-is and dead-lettered
    assert result.alerts_by_rule == result.expected_by_rule
    assert result.score.precision == 1.0
    assert result.score.recall == 1.0
    assert result.score.rule_mismatches == []
    assert result.score.true_positives > 20
    assert result.stack_note == "stack: left running (it was up before the demo)"
    # the journey story: 4 exposed, 2 journeys (the listed number, then the discovered one),
    # the unlisted number discovered once, then matched with source scamwatch-discovery
    story = result.story
    assert story.exposed == story.expected_exposed == 4
    for rule, count in (("victim_journey", 2), ("discovered_scam_number", 1)):
        assert result.alerts_by_rule[rule] == result.expected_by_rule[rule] == count
    assert story.discovered == 1
    assert story.callee_from_discovery == story.expected_callee_from_discovery == 2
    text = console.export_text()
    assert re.search(r"subscribers exposed \(page view alerted\)\s+│\s+4\s+│\s+4", text)
    assert re.search(r"victim_journey\s+│\s+2\s+│\s+2", text)
    assert re.search(rf"{re.escape(story.unlisted_number)} discovered\s+│\s+1\s+│\s+1", text)
    assert re.search(r"callee_scam_number from scamwatch-discovery\s+│\s+2\s+│\s+2", text)
    assert re.search(r"precision\s+│\s+1\.000", text)
    assert re.search(r"recall\s+│\s+1\.000", text)
    # it cleaned up after itself: no topics or Redis keys of this run left
    assert not [t for t in _topics(settings) if t.startswith(f"demo-{result.run_id}-")]
    assert not list(redis_client.scan_iter(match=f"scamwatch-demo:{result.run_id}:*"))


def test_demo_command_prints_alerts_and_the_summary(kafka_bootstrap: str) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=170)
    finally:
        if proc.poll() is None:  # SIGTERM: the demo stops its worker before it exits
            proc.terminate()
            proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "callee_scam_number" in out
    assert re.search(r"HIGH\s+callee_scam_number\s+\S+/\S+-sub-\d{4}\s+callee=", out)
    assert "keyword_impersonation" in out
    # the journey story's alerts as they arrive, and its rows in the summary
    assert re.search(r"CRITICAL\s+victim_journey\s+telco-us-east/story-sub-\d\d\s+callee=", out)
    assert re.search(r"HIGH\s+discovered_scam_number\s+telco-us-east/story-sub-\d\d", out)
    assert re.search(r"callee_scam_number\s+\S+/story-sub-\d\d .*\[scamwatch-discovery\]", out)
    assert re.search(r"callee_scam_number from scamwatch-discovery\s+│\s+2\s+│\s+2", out)
    assert re.search(r"events sent \(calls \+ web\)\s+│\s+600 \(300 \+ 300\)", out)
    assert re.search(r"precision\s+│\s+1\.000", out)
    assert re.search(r"recall\s+│\s+1\.000", out)
    assert "worker stopped (exit 0)" in out


def test_sigterm_stops_the_demo_and_its_worker(kafka_bootstrap: str) -> None:
    """A demo stopped by SIGTERM mid-run still stops the worker it started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "demo", "--rate", "20", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = ""
    worker_pid = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the demo prints "pid N" within its worker stage
            out += line
            found = re.search(r"pid (\d+), metrics on", line)
            if found:
                worker_pid = int(found.group(1))
                break
        assert worker_pid is not None, out
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
        out += rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert "worker stopped" in out
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == "zombie"


def test_a_worker_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    worker = start_worker({"SCAMWATCH_APP_ID": "not a valid group name!"}, tmp_path / "w.log")
    try:
        try:
            wait_worker_ready(worker, timeout=60)
        except DemoError as exc:
            message = str(exc)
        else:
            raise AssertionError("a worker with a bad setting came up")
    finally:
        worker.stop()
    assert "exited with code 2 before it was ready" in message
    assert "SCAMWATCH_APP_ID" in message  # the worker's own error, from its log
