"""``scamwatch demo``: the whole pipeline on bundled sample data, end to end, bounded in time.

1. the local stack (started only if Kafka or Redis does not answer; stopped afterwards only
   if the demo started it, unless ``--keep-stack``);
2. the bundled sample feeds (scam numbers, domains, keywords; genuine Microsoft/Amazon
   lines and sites as allowlist) into Redis under a prefix of this run's own;
3. one worker subprocess on topics of this run's own (``demo-<run>-calls`` …) and free
   loopback ports;
4. seeded sample traffic generated from the loaded indicators, replayed to both streams;
5. a seeded scam journey told step by step: subscribers open a scam page (exposed), one
   dials the listed number (``victim_journey``), others an unlisted one until it is
   discovered (``discovered_scam_number``; the worker runs ``SCAMWATCH_DISCOVERY=indicator``,
   so it is added to the store), then later calls to it alert as ``callee_scam_number`` with
   source ``scamwatch-discovery``;
6. alerts printed as they arrive, then a summary: events, alerts by rule, dead-letters by
   reason, the journey's rows, precision and recall against the generator's truth;
7. everything it made removed (worker, topics, Redis keys) so a re-run starts clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.core.discovery import DISCOVERY_SOURCE
from engine.core.models import IndicatorType, Rule, StatefulRule, Stream, now_ms
from engine.core.records import Alert
from engine.devtools.scrape import scrape_metrics
from engine.devtools.traffic import (
    JourneyStory,
    Score,
    Traffic,
    TrafficIndicators,
    generate,
    journey_story,
    score,
)
from engine.errors import ConfigError, DemoError, ScamwatchError
from engine.kafka_io import (
    check_connection,
    decode_alert,
    decode_deadletter,
    delete_topics,
    ensure_topics,
    format_alert,
    iter_records,
    replay_lines,
)
from engine.settings import Settings

WORKER_START_TIMEOUT_S = 60.0
STORY_STEP_TIMEOUT_S = 30.0  # each step of the journey story (a call, the discovery)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    keep_stack: bool = False
    quiet: bool = False
    timeout_s: float = 90.0  # from the first event sent to the last verdict
    calls: int = 300
    web: int = 300
    rate: float = 400.0  # events/s per stream, so alerts visibly stream in
    seed: int | None = None  # None: the generator's default seed


@dataclass(slots=True)
class StoryResult:
    """What the journey story showed, observed against the generator's truth."""

    events: int = 0  # calls and page views of the story (besides the mixed traffic)
    page_url: str = ""
    unlisted_number: str = ""
    exposed: int = 0  # story subscribers whose page view alerted (exposed them)
    expected_exposed: int = 0
    discovered: int = 0  # discovered_scam_number alerts for the unlisted number
    callee_from_discovery: int = 0  # callee_scam_number alerts on the discovered indicator
    expected_callee_from_discovery: int = 0


@dataclass(slots=True)
class DemoResult:
    ok: bool = False
    run_id: str = ""
    sent: dict[str, int] = field(default_factory=dict)
    not_json: int = 0
    processed: dict[str, int] = field(default_factory=dict)  # from the worker's metrics
    alerts_by_rule: Counter[str] = field(default_factory=Counter)  # events alerted, by rule
    expected_by_rule: Counter[str] = field(default_factory=Counter)
    deadletters: Counter[str] = field(default_factory=Counter)
    expected_deadletters: Counter[str] = field(default_factory=Counter)
    score: Score = field(default_factory=Score)
    alerts: int = 0
    duplicate_alerts: int = 0  # same alert_id again (at-least-once redelivery), dropped
    story: StoryResult = field(default_factory=StoryResult)
    # victim_journey / discovered_scam_number alerts of the mixed traffic: whether a call is
    # read before or after the page that exposed its subscriber depends on how the two topics
    # interleave, so no truth holds them (the story's are scored)
    incidental: Counter[str] = field(default_factory=Counter)
    stack_note: str = ""
    error: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_events_total(port: int) -> dict[str, int] | None:
    """``scamwatch_events_total`` by outcome, from a worker's /metrics (None if it does not
    answer)."""
    try:
        scrape = scrape_metrics(port, timeout=2)
    except OSError:
        return None
    return {k: int(v) for k, v in scrape.by_label("scamwatch_events_total", "outcome").items()}


# ------------------------------------------------------------------------------ stack


def _ensure_stack(settings: Settings, console: Console) -> list[str]:
    """Start Kafka/Redis when they do not answer; the names of the parts this started."""
    from engine.devtools import stack

    redis_was_up = stack.redis_ping(settings)
    kafka_was_up = stack.port_open(*stack.kafka_address(settings))
    if redis_was_up and kafka_was_up:
        console.print("[dim]stack: Kafka and Redis already answer; using them[/]")
        return []
    console.print("stack: starting the local Kafka/Redis (scamwatch stack up) ...")
    parts = stack.stack_up(settings, report=lambda line: console.print(f"[dim]  {line}[/]"))
    down = [p.name for p in parts if not p.up]
    if down:
        raise DemoError(f"the local stack did not come up: {', '.join(down)} not answering")
    started = []
    if not redis_was_up:
        started.append("redis")
    if not kafka_was_up:
        started.append("kafka")
    return started


# ------------------------------------------------------------------------------ feeds


def load_sample_feeds(settings: Settings, prefix: str, console: Console) -> Table:
    """Load every bundled sample feed into Redis under ``prefix``; a table of what was loaded."""
    from engine.devtools import samples
    from engine.store.redis import RedisStore

    table = Table(title="sample feeds loaded", title_justify="left")
    for column in ("feed", "as", "loaded", "invalid"):
        table.add_column(column, justify="right" if column in ("loaded", "invalid") else "left")
    store = RedisStore.from_settings(settings.redis, prefix=prefix)
    try:
        region = settings.processing.default_region
        for feed, report in samples.load_sample_feeds(store, region=region):
            result = report.result
            table.add_row(
                feed.path.name,
                "allowlist" if feed.allowlist else "indicators",
                str(result.added + result.updated + result.unchanged),
                str(report.invalid),
            )
    finally:
        store.close()
    return table


def _delete_prefix(settings: Settings, prefix: str) -> int:
    from engine.store.redis import connect

    # a cluster client when it is a cluster: a plain one would scan one node only
    client = connect(settings.redis.url.get_secret_value(), **settings.redis.client_options())
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def _snapshot(settings: Settings, prefix: str) -> TrafficIndicators:
    from engine.store.redis import RedisStore

    store = RedisStore.from_settings(settings.redis, prefix=prefix)
    try:
        return TrafficIndicators.from_snapshot(store.snapshot(), now_ms())
    finally:
        store.close()


STATEFUL_RULES = frozenset(str(r) for r in StatefulRule)

# ------------------------------------------------------------------------------ worker


@dataclass(slots=True)
class WorkerProcess:
    """A ``scamwatch worker`` subprocess on loopback ports of its own."""

    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the worker commits and leaves its group), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_worker(
    env_overrides: dict[str, str], log_path: Path, args: Sequence[str] = ()
) -> WorkerProcess:
    """Start ``scamwatch worker`` with these ``SCAMWATCH_*`` settings, free ports and any
    further ``args`` (e.g. ``--processes 2``)."""
    metrics_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        **env_overrides,
        "SCAMWATCH_METRICS_BIND": "127.0.0.1",
        "SCAMWATCH_WEB_BIND": "127.0.0.1",
    }
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "worker",
            "--web-port",
            str(web_port),
            "--metrics-port",
            str(metrics_port),
            *args,
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log_file.close()
    return WorkerProcess(proc, metrics_port, log_path)


def wait_worker_ready(worker: WorkerProcess, timeout: float = WORKER_START_TIMEOUT_S) -> None:
    """Until the worker's /metrics answers; a clear error (with its log) if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise DemoError(
                f"the worker exited with code {worker.proc.returncode} before it was ready; "
                f"the end of its log ({worker.log_path}):\n{worker.log_tail()}"
            )
        if scrape_events_total(worker.metrics_port) is not None:
            return
        time.sleep(0.3)
    raise DemoError(
        f"the worker did not come up within {timeout:.0f} s (no /metrics on port "
        f"{worker.metrics_port}); the end of its log ({worker.log_path}):\n{worker.log_tail()}"
    )


# ------------------------------------------------------------------------------ the run


@contextlib.contextmanager
def _stage(console: Console, text: str) -> Iterator[None]:
    started = time.monotonic()
    console.print(f"[bold cyan]▶[/] {text}")
    yield
    console.print(f"  [dim]done in {time.monotonic() - started:.1f} s[/]")


async def _stream_and_collect(
    settings: Settings,
    topics: dict[str, str],
    traffic: Traffic,
    story: JourneyStory,
    prefix: str,
    worker: WorkerProcess,
    options: DemoOptions,
    result: DemoResult,
    console: Console,
) -> dict[tuple[Stream, str], set[str]]:
    """Replay both streams, print alerts as they arrive, wait until every event has its
    verdict (the worker's events counter reaches what was sent); then tell the journey
    story, one step at a time, and wait until the topics are quiet."""
    observed: dict[tuple[Stream, str], set[str]] = {}
    story_ids = story.event_ids
    seen_ids: set[str] = set()
    last_record = time.monotonic()
    alerts_topic, dead_topic = topics["alerts"], topics["deadletter"]

    async def collect() -> None:
        nonlocal last_record
        async for topic, value in iter_records(
            settings.kafka, [alerts_topic, dead_topic], from_beginning=True
        ):
            last_record = time.monotonic()
            if topic == dead_topic:
                letter = decode_deadletter(value)
                if letter is not None:
                    result.deadletters[letter.reason] += 1
                continue
            alert = decode_alert(value)
            if alert is None:
                continue
            if alert.alert_id in seen_ids:  # at-least-once: a redelivered event, same id; drop it
                result.duplicate_alerts += 1
                continue
            seen_ids.add(alert.alert_id)
            result.alerts += 1
            in_story = alert.event_id in story_ids
            if alert.rule in STATEFUL_RULES and not in_story:
                result.incidental[alert.rule] += 1
                continue
            observed.setdefault((alert.stream, alert.event_id), set()).add(alert.rule)
            if in_story:
                _note_story_alert(alert, story, result.story)
            if not options.quiet:
                console.print(format_alert(alert), soft_wrap=True)

    collector = asyncio.create_task(collect())

    def check_running() -> None:
        if worker.proc.poll() is not None:
            raise DemoError(
                f"the worker died (exit {worker.proc.returncode}):\n{worker.log_tail()}"
            )
        if collector.done():
            collector.result()  # raises what stopped it

    async def until(done: Callable[[], bool], what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            check_running()
            if done():
                return
            await asyncio.sleep(0.3)
        raise DemoError(f"{what} did not happen within {within:.0f} s:\n{worker.log_tail()}")

    def verdicts() -> int:
        counts = scrape_events_total(worker.metrics_port) or {}
        result.processed = counts
        return sum(counts.values())

    try:
        sends = [
            replay_lines(
                ((line, len(line) + 1) for line in traffic.lines(stream)),
                topic=topics[str(stream)],
                kafka=settings.kafka,
                rate=options.rate,
            )
            for stream in (Stream.CALLS, Stream.WEB)
        ]
        for stream, stats in zip(
            (Stream.CALLS, Stream.WEB), await asyncio.gather(*sends), strict=True
        ):
            result.sent[str(stream)] = stats.sent
            result.not_json += stats.not_json
        total = sum(result.sent.values())
        try:
            await until(lambda: verdicts() >= total, "a verdict for every event", options.timeout_s)
        except DemoError:
            raise DemoError(
                f"not every event got a verdict within {options.timeout_s:.0f} s: "
                f"sent {total}, the worker counted {sum(result.processed.values())}"
            ) from None
        await _tell_story(settings, topics, story, prefix, worker, result, console, until, verdicts)
        # verdicts are counted when their sends start: give the last alerts time to arrive
        done_at = time.monotonic()
        await until(
            lambda: time.monotonic() - done_at > 1.5 and time.monotonic() - last_record > 1.0,
            "the alert topics going quiet",
            options.timeout_s,
        )
        return observed
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector


def _note_story_alert(alert: Alert, story: JourneyStory, out: StoryResult) -> None:
    """Count an alert of a story event in the story's rows."""
    if alert.rule == str(StatefulRule.DISCOVERED_SCAM_NUMBER):
        if alert.discovery is not None and alert.discovery.number == story.unlisted_number:
            out.discovered += 1
    elif alert.rule == str(Rule.CALLEE_SCAM_NUMBER) and any(
        DISCOVERY_SOURCE in m.indicator.sources for m in alert.matches
    ):
        out.callee_from_discovery += 1


def _at_least(count: Callable[[], int], n: int) -> Callable[[], bool]:
    return lambda: count() >= n


async def _send(settings: Settings, topic: str, lines: Sequence[bytes]) -> int:
    stats = await replay_lines(
        ((line, len(line) + 1) for line in lines), topic=topic, kafka=settings.kafka
    )
    return stats.sent


async def _tell_story(
    settings: Settings,
    topics: dict[str, str],
    story: JourneyStory,
    prefix: str,
    worker: WorkerProcess,
    result: DemoResult,
    console: Console,
    until: Callable[[Callable[[], bool], str, float], Any],
    verdicts: Callable[[], int],
) -> None:
    """The journey story, each step sent once the worker has done the one before (so which
    call crosses the discovery threshold never depends on how partitions interleave)."""
    from engine.store.redis import RedisStore

    number = story.unlisted_number
    sent = sum(result.sent.values())
    console.print(
        f"[bold cyan]▶[/] the journey story: {len(story.pages)} subscribers of "
        f"{story.partner_id} open {story.page_url}"
    )
    sent += await _send(settings, topics["web"], story.pages)
    await until(lambda: verdicts() >= sent, "the page views' verdicts", STORY_STEP_TIMEOUT_S)
    console.print(
        f"  [bold]exposed[/]: {', '.join(story.exposed)}; minutes later one calls the listed "
        f"{story.listed_number}, the others {number}, listed nowhere"
    )
    for line in story.calls:  # one at a time: the sightings reach discover in this order
        sent += await _send(settings, topics["calls"], [line])
        await until(_at_least(verdicts, sent), "a call's verdict", STORY_STEP_TIMEOUT_S)
    await until(
        lambda: result.story.discovered >= 1,
        f"the discovery of {number}",
        STORY_STEP_TIMEOUT_S,
    )
    store = RedisStore.from_settings(settings.redis, prefix=prefix)
    try:
        indicator = store.get(IndicatorType.PHONE, number)
        version = store.version()
    finally:
        store.close()
    if indicator is None:
        raise DemoError(f"{number} was discovered but is not in the store (SCAMWATCH_DISCOVERY?)")
    console.print(
        f"  [bold]discovered[/] {number}: in the store as {', '.join(indicator.sources)} "
        f"(confidence {indicator.confidence}); waiting for the worker to follow (v{version})"
    )

    def follows() -> bool:
        try:
            scrape = scrape_metrics(worker.metrics_port, timeout=2)
        except OSError:
            return False
        return scrape.total("scamwatch_indicator_version") >= version

    await until(follows, f"the worker following v{version}", STORY_STEP_TIMEOUT_S)
    console.print(f"  later: an exposed and an unexposed subscriber call {number}")
    sent += await _send(settings, topics["calls"], story.later_calls)
    await until(lambda: verdicts() >= sent, "the later calls' verdicts", STORY_STEP_TIMEOUT_S)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises SystemExit, so the cleanup (worker, topics, stack) still runs."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    options: DemoOptions, settings: Settings, console: Console | None = None
) -> DemoResult:
    """Run the demo; returns what it measured (``ok`` False with ``error`` on failure).
    Whatever happens (an error, Ctrl-C, SIGTERM), what it started is stopped."""
    with _sigterm_unwinds():
        return _run_demo(options, console, settings)


def _run_demo(options: DemoOptions, console: Console | None, settings: Settings) -> DemoResult:
    console = console or Console()
    result = DemoResult(run_id=f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}")
    run = result.run_id
    topics = {
        name: f"demo-{run}-{name}" for name in ("calls", "web", "alerts", "deadletter", "sightings")
    }
    prefix = f"scamwatch-demo:{run}:"
    workdir = Path(tempfile.mkdtemp(prefix=f"scamwatch-demo-{run}-"))
    started_parts: list[str] = []
    worker: WorkerProcess | None = None
    began = time.monotonic()
    try:
        with _stage(console, "local stack"):
            started_parts = _ensure_stack(settings, console)
            asyncio.run(check_connection(settings.kafka))  # credentials refused: stop here
        with _stage(console, f"sample feeds → Redis (prefix {prefix!r})"):
            console.print(load_sample_feeds(settings, prefix, console))
        with _stage(console, "sample traffic (seeded generator, truth known)"):
            facts = _snapshot(settings, prefix)
            # events dated "now" (a few seconds back), so latency metrics read sensibly
            traffic = generate(
                facts,
                calls=options.calls,
                web=options.web,
                start_ms=now_ms() - 5_000,
                gap_ms=(1, 15),
                **({"seed": options.seed} if options.seed is not None else {}),
            )
            # the story: minutes of a journey, ending about now
            story = journey_story(
                facts,
                min_subscribers=settings.discovery.discovery_min_subscribers,
                start_ms=now_ms() - 600_000,
                **({"seed": options.seed} if options.seed is not None else {}),
            )
            result.expected_deadletters = traffic.expected_deadletters()
            for t in (*traffic.truth, *story.truth):
                for rule in t.rules:
                    result.expected_by_rule[str(rule)] += 1
            result.story = _expected_story(story)
            console.print(
                f"  {len(traffic.calls)} call and {len(traffic.web)} web events, "
                f"{traffic.expected_alerting_events()} should alert, "
                f"{sum(result.expected_deadletters.values())} are malformed; "
                f"a journey story of {result.story.events} events"
            )
        with _stage(console, f"topics {', '.join(topics.values())}"):
            asyncio.run(ensure_topics(settings.kafka, list(topics.values()), partitions=2))
        with _stage(console, "worker (scamwatch worker)"):
            worker = start_worker(
                {
                    "SCAMWATCH_TOPIC_CALLS": topics["calls"],
                    "SCAMWATCH_TOPIC_WEB": topics["web"],
                    "SCAMWATCH_TOPIC_ALERTS": topics["alerts"],
                    "SCAMWATCH_TOPIC_DEADLETTER": topics["deadletter"],
                    "SCAMWATCH_TOPIC_SIGHTINGS": topics["sightings"],
                    # the score is per event against the generator's truth: every alert
                    "SCAMWATCH_SUPPRESS_SECONDS": "0",
                    # the story's discovered number is added to the store, then matched
                    "SCAMWATCH_DISCOVERY": "indicator",
                    "SCAMWATCH_APP_ID": f"demo-{run}",
                    "SCAMWATCH_REDIS_PREFIX": prefix,
                    "SCAMWATCH_STATE_DIR": str(workdir / "state"),
                },
                workdir / "worker.log",
            )
            wait_worker_ready(worker)
            console.print(
                f"  pid {worker.proc.pid}, metrics on "
                f"http://127.0.0.1:{worker.metrics_port}/metrics"
            )
        with _stage(
            console,
            f"replaying traffic at {options.rate:.0f} events/s per stream; alerts as they arrive:",
        ):
            observed = asyncio.run(
                _stream_and_collect(
                    settings, topics, traffic, story, prefix, worker, options, result, console
                )
            )
        result.score = score(
            dataclasses.replace(traffic, truth=traffic.truth + story.truth), observed
        )
        result.story.exposed = sum(
            1
            for t in story.truth
            if t.stream is Stream.WEB and observed.get((t.stream, t.event_id or ""))
        )
        # events by rule (an event matched by two keywords is two alerts but one event)
        result.alerts_by_rule = Counter(rule for rules in observed.values() for rule in rules)
        result.ok = True
    except ConfigError:
        raise  # a bad setting: the CLI prints it, naming the setting, and exits 2
    except ScamwatchError as exc:
        result.error = str(exc)
        console.print(f"[bold red]demo failed:[/] {exc}")
    finally:
        _cleanup(settings, console, worker, topics, prefix, started_parts, options, result)
        if result.ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            console.print(f"[dim]the worker's log and state are kept in {workdir}[/]")
    if result.ok:
        console.print(summary_table(result))
        if result.score.rule_mismatches:
            console.print("[yellow]events whose alerted rules differ from the truth:[/]")
            for line in result.score.rule_mismatches[:20]:
                console.print(f"  {line}")
    console.print(f"[dim]{result.stack_note}; demo took {time.monotonic() - began:.0f} s[/]")
    return result


def _expected_story(story: JourneyStory) -> StoryResult:
    return StoryResult(
        events=len(story.pages) + len(story.calls) + len(story.later_calls),
        page_url=story.page_url,
        unlisted_number=story.unlisted_number,
        expected_exposed=sum(1 for t in story.truth if t.stream is Stream.WEB and t.should_alert),
        expected_callee_from_discovery=story.discovered_callee_alerts,
    )


def _cleanup(
    settings: Settings,
    console: Console,
    worker: WorkerProcess | None,
    topics: dict[str, str],
    prefix: str,
    started_parts: list[str],
    options: DemoOptions,
    result: DemoResult,
) -> None:
    if worker is not None:
        code = worker.stop()
        console.print(f"[dim]worker stopped (exit {code})[/]")
    with contextlib.suppress(ScamwatchError, OSError):
        leader = f"demo-{result.run_id}-__assignor-__leader"  # Faust's own topic
        changelog = f"demo-{result.run_id}-scamwatch-discovery-changelog"  # discover's table
        asyncio.run(delete_topics(settings.kafka, [*topics.values(), leader, changelog]))
    with contextlib.suppress(Exception):
        _delete_prefix(settings, prefix)
    if started_parts and not options.keep_stack:
        from engine.devtools import stack

        stack.stack_down(
            settings, report=lambda line: console.print(f"[dim]  {line}[/]"), only=started_parts
        )
        result.stack_note = f"stack: stopped {' and '.join(started_parts)} (the demo started it)"
    elif started_parts:
        result.stack_note = (
            f"stack: left {' and '.join(started_parts)} running "
            "(--keep-stack); `scamwatch stack down` stops it"
        )
    else:
        result.stack_note = "stack: left running (it was up before the demo)"


def summary_table(result: DemoResult) -> Table:
    """Events, verdicts, alerts by rule, dead-letters by reason, precision and recall."""
    table = Table(title=f"scamwatch demo {result.run_id}: summary", title_justify="left")
    table.add_column("what")
    table.add_column("observed", justify="right")
    table.add_column("expected", justify="right")
    sent = sum(result.sent.values())
    table.add_row(
        "events sent (calls + web)",
        f"{sent} ({result.sent.get('calls', 0)} + {result.sent.get('web', 0)})",
        "",
    )
    for outcome in ("matched", "clean", "deadletter"):
        table.add_row(f"  verdict: {outcome}", str(result.processed.get(outcome, 0)), "")
    table.add_row("alerts (distinct alert_id)", str(result.alerts), "")
    table.add_row(
        "  duplicates dropped (redelivered)", str(result.duplicate_alerts), "", end_section=True
    )
    for rule in sorted(set(result.alerts_by_rule) | set(result.expected_by_rule)):
        table.add_row(
            f"  events alerted: {rule}",
            str(result.alerts_by_rule.get(rule, 0)),
            str(result.expected_by_rule.get(rule, 0)),
        )
    table.add_row(
        "dead-letters",
        str(sum(result.deadletters.values())),
        str(sum(result.expected_deadletters.values())),
        end_section=True,
    )
    for reason in sorted(set(result.deadletters) | set(result.expected_deadletters)):
        table.add_row(
            f"  dead-letter {reason}",
            str(result.deadletters.get(reason, 0)),
            str(result.expected_deadletters.get(reason, 0)),
        )
    story = result.story
    table.add_row(f"journey story ({story.events} events)", "", "", end_section=True)
    table.add_row(
        "  subscribers exposed (page view alerted)", str(story.exposed), str(story.expected_exposed)
    )
    for rule in (StatefulRule.VICTIM_JOURNEY, StatefulRule.DISCOVERED_SCAM_NUMBER):
        table.add_row(
            f"  {rule}",
            str(result.alerts_by_rule.get(str(rule), 0)),
            str(result.expected_by_rule.get(str(rule), 0)),
        )
    table.add_row(f"  {story.unlisted_number} discovered", str(story.discovered), "1")
    table.add_row(
        f"  callee_scam_number from {DISCOVERY_SOURCE}",
        str(story.callee_from_discovery),
        str(story.expected_callee_from_discovery),
    )
    if result.incidental:
        incidental = ", ".join(f"{n} {rule}" for rule, n in sorted(result.incidental.items()))
        table.add_row(
            f"mixed traffic's own journeys (timing-dependent, not scored): {incidental}", "", ""
        )
    s = result.score
    table.add_row(
        "alerting events: true / false positives, missed",
        f"{s.true_positives} / {s.false_positives} / {s.false_negatives}",
        "",
        end_section=True,
    )
    table.add_row("precision", f"{s.precision:.3f}", "1.000")
    table.add_row("recall", f"{s.recall:.3f}", "1.000")
    return table
