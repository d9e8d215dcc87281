"""``scamwatch worker``: run one worker (calls and web) until SIGTERM/SIGINT, or N of them
(``--processes N``) under one parent that forwards signals and serves one ``/metrics``."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from engine.errors import ConfigError
from engine.settings import Settings, load_settings

if TYPE_CHECKING:
    from engine.metrics import WorkerMetrics

log = logging.getLogger("engine.worker")


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the root app."""
    app.command("worker")(worker)


def worker(
    web_port: int | None = typer.Option(
        None, "--web-port", help="Faust web server port (default SCAMWATCH_WEB_PORT, 6066)."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help="Prometheus /metrics port (default SCAMWATCH_METRICS_PORT, 9464).",
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        max=256,
        help="Worker processes in the group under this one (process i on web port PORT+i), "
        "behind one /metrics.",
    ),
    loglevel: str = typer.Option("info", "--loglevel", help="debug, info, warning, error."),
    parent: int | None = typer.Option(None, "--parent", hidden=True),  # set by --processes
) -> None:
    """Consume calls and web events, match them, produce alerts and dead-letters."""
    overrides: dict[str, object] = {}
    if web_port is not None:
        overrides["web_port"] = web_port
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    # a bad setting raises ConfigError: one line naming the variable, exit 2
    settings = load_settings(worker=overrides)
    if processes > 1:
        sys.exit(run_processes(settings, processes, loglevel=loglevel))
    if parent is not None:
        _die_with(parent)
    sys.exit(run_worker(settings, loglevel=loglevel, serve_metrics=parent is None))


def run_worker(settings: Settings, *, loglevel: str = "info", serve_metrics: bool = True) -> int:
    """Start the worker and block until it stops; returns the process exit code."""
    import faust
    import uvloop

    from engine.core.journey import ExposureTable
    from engine.core.models import now_ms
    from engine.core.processor import Protection, RecordProcessor
    from engine.core.suppression import SuppressionTable
    from engine.metrics import WorkerMetrics
    from engine.store.redis import RedisStore
    from engine.stream.app import Dispatcher, create_app
    from engine.stream.exposures import ExposureReader
    from engine.stream.fastpath import choose_data_path
    from engine.stream.follower import FrozenHeap, IndicatorFollower
    from engine.stream.topics import prepare_topics

    _configure_logging(loglevel)
    log.info("scamwatch worker starting with settings %s", settings.redacted())

    listen = settings.worker
    _check_port_free("SCAMWATCH_WEB_PORT", listen.web_bind, listen.web_port)
    metrics = WorkerMetrics(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if serve_metrics:
        try:
            metrics.serve(listen.metrics_port, listen.metrics_bind)
        except OSError as exc:
            raise _metrics_port_error(settings, exc) from None
        log.info("metrics on http://%s:%d/metrics", listen.metrics_bind, listen.metrics_port)
    _check_kafka(settings)

    store = RedisStore.from_settings(settings.redis, socket_timeout=5)
    follower = IndicatorFollower(
        store,
        metrics=metrics,
        default_region=settings.processing.default_region,
        poll_interval=settings.worker.indicator_poll_seconds,
        heap=FrozenHeap(enabled=settings.worker.gc_freeze),
    )
    # uvloop: the per-record work around our code is mostly asyncio machinery (futures,
    # callbacks, the consumer's waits), which uvloop runs in C
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # no consuming before the indicators are in (unless Redis stays down: then loudly empty)
    if loop.run_until_complete(follower.load(settings.worker.snapshot_wait_seconds)):
        log.info("indicator store: %s", "Redis Cluster" if store.clustered else "Redis")
    loop.run_until_complete(prepare_topics(settings))
    data_path = choose_data_path(settings.worker.data_path)
    log.info("data path: %s", data_path)

    guard = settings.protection
    exposures: ExposureReader | None = None
    protection: Protection | None = None
    if guard.protection:
        exposures = ExposureReader(
            settings, ExposureTable(guard.journey_window_seconds * 1000), metrics
        )
        # no consuming before the exposures still open are known
        opened = loop.run_until_complete(exposures.catch_up())
        log.info("%d exposures open at start (window %d s)", opened, guard.journey_window_seconds)
        suppression = None
        if guard.suppress_seconds > 0:
            suppression = SuppressionTable(guard.suppress_seconds * 1000, now_ms)
        protection = Protection(exposures.table, settings.topics.sightings, suppression)
    else:
        log.warning("SCAMWATCH_PROTECTION=false: no journeys, sightings or suppression")

    processor = RecordProcessor(
        matcher=follower.current,
        alerts_topic=settings.topics.alerts,
        deadletter_topic=settings.topics.deadletter,
        max_record_bytes=settings.processing.max_record_bytes,
        max_output_bytes=settings.processing.max_output_bytes,
        protection=protection,
    )
    dispatcher = Dispatcher(processor, metrics, on_fatal=lambda exc: None)
    # each worker its own Faust data dir: two on one host must not share state
    datadir = (
        Path(settings.stack.state_dir).expanduser()
        / "workers"
        / f"{listen.app_id}-{listen.web_port}"
    )
    datadir.mkdir(parents=True, exist_ok=True)
    hunter = None
    if settings.worker.retrohunt_seconds > 0:
        from engine.stream.autohunt import AutoHunter, RedisHuntLedger

        hunter = AutoHunter(
            settings,
            store=store,
            ledger=RedisHuntLedger(store, listen.app_id),
            metrics=metrics,
            last_handled=dispatcher.last_handled,
            version=lambda: follower.version,
        )
        log.info(
            "automatic retro-hunts on: %d s back, at most %d events/s",
            settings.worker.retrohunt_seconds,
            settings.worker.retrohunt_rate,
        )
    app = create_app(
        settings,
        dispatcher=dispatcher,
        follower=follower,
        web_port=settings.worker.web_port,
        datadir=datadir,
        data_path=data_path,
        exposures=exposures,
        hunter=hunter,
    )
    if settings.discovery.discovery != "off":
        from engine.stream.discover import discover_agent, prepare_changelog

        partitions = loop.run_until_complete(prepare_changelog(settings))
        discover_agent(
            app, settings, partitions=partitions, follower=follower, store=store, metrics=metrics
        )
    faust_worker = faust.Worker(app, loop=loop, loglevel=loglevel.upper(), quiet=True)
    dispatcher.on_fatal = _stop_after_fatal
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        log.critical("worker stopped after a fatal error: %r", exc)
        return 1
    else:
        code = 0
    if dispatcher.failed:
        log.critical("worker stopped after a fatal error (see above): exit 1")
        return 1
    log.info("worker stopped: %s", _processed(metrics))
    return code


def _processed(metrics: WorkerMetrics) -> str:
    """What this worker process handled since it started, from its own counters (the last
    word of a worker whose /metrics is gone: a record handled while it was stopping counts)."""
    by_stream: dict[str, float] = {}
    for family in metrics.events.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                stream = sample.labels["stream"]
                by_stream[stream] = by_stream.get(stream, 0.0) + sample.value
    total = sum(by_stream.values())
    parts = ", ".join(f"{s} {int(n)}" for s, n in sorted(by_stream.items()))
    return f"{int(total)} input records processed since start ({parts or 'none'})"


# a worker stopping after a fatal error and still running after this ends at once (exit 1)
FATAL_STOP_GRACE_SECONDS = 30.0


def _stop_after_fatal(exc: BaseException) -> None:
    """Stop the worker as SIGTERM does, from a record that failed for good (the exit code is 1).

    Not ``Worker.crash``: that marks every Faust service crashed at once, and the consumer's
    thread then stops on its own (LeaveGroup) while the app is still in its stop's last commit,
    which it asks of that thread: under load the commit waits forever, at "Wait for streams...".
    The orderly stop commits what was acked (never the failed record: see Dispatcher) after the
    other records' outputs are delivered; a watchdog ends the process if that does not finish.
    """
    watchdog = threading.Timer(FATAL_STOP_GRACE_SECONDS, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    os.kill(os.getpid(), signal.SIGTERM)  # Faust's worker stops on it, in order


def _exit_now() -> None:
    log.critical(
        "worker still stopping %.0f s after a fatal error: exiting now (exit 1, nothing more "
        "committed)",
        FATAL_STOP_GRACE_SECONDS,
    )
    logging.shutdown()
    os._exit(1)


def _configure_logging(loglevel: str) -> None:
    logging.basicConfig(
        level=loglevel.upper(), format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )


# a child still stopping after this is killed (Kubernetes' own grace period is 30 s)
STOP_GRACE_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1
_CHILD = (sys.executable, "-m", "engine.cli", "worker")


def run_processes(settings: Settings, processes: int, *, loglevel: str = "info") -> int:
    """Run ``processes`` workers in the group and block until they stop; the exit code.

    SIGTERM/SIGINT are forwarded to every child, and the parent exits 0 when all stopped
    cleanly. A child that exits unasked is not restarted: the others are stopped and the
    parent exits with the child's code (128+N when signal N killed it, 1 when it exited 0).
    """
    from engine.metrics import mark_process_dead, serve_multiprocess

    _configure_logging(loglevel)
    listen = settings.worker
    base = listen.web_port
    if base == 0:
        raise ConfigError("SCAMWATCH_WEB_PORT", "--processes needs a fixed port (process i: +i)")
    if base + processes - 1 > 65535:
        raise ConfigError("SCAMWATCH_WEB_PORT", f"{base}+{processes - 1} is past 65535")
    ports = [base + i for i in range(processes)]
    for port in ports:
        _check_port_free("SCAMWATCH_WEB_PORT", listen.web_bind, port)
    _check_port_free("SCAMWATCH_METRICS_PORT", listen.metrics_bind, listen.metrics_port)
    _check_kafka(settings)  # once here, before any child: one clear line, not N

    # fresh per run: files left by an earlier run would be summed with this one's; no other
    # parent uses it, since that one would hold the web ports just checked
    metrics_dir = (
        Path(settings.stack.state_dir).expanduser() / "workers" / f"{listen.app_id}-{base}.metrics"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}

    children: dict[int, subprocess.Popen[bytes]] = {}
    stop_signal: list[int] = []  # the signals received, in order

    def forward(signum: int, _frame: FrameType | None) -> None:
        stop_signal.append(signum)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    me = str(os.getpid())
    try:
        for port in ports:
            if stop_signal:
                break
            child = subprocess.Popen(
                [*_CHILD, "--web-port", str(port), "--loglevel", loglevel, "--parent", me],
                env=env,
                stdin=subprocess.DEVNULL,
                # a Ctrl-C reaches only the parent, which forwards it once
                start_new_session=True,
            )
            children[child.pid] = child
            log.info("worker process %d started (web port %d)", child.pid, port)
        try:
            serve_multiprocess(
                listen.metrics_port,
                listen.metrics_bind,
                str(metrics_dir),
                alive=lambda: sum(1 for c in children.values() if c.returncode is None),
            )
        except OSError as exc:
            forward(signal.SIGTERM, None)
            _wait_all(children, time.monotonic() + STOP_GRACE_SECONDS)
            raise _metrics_port_error(settings, exc) from None
        log.info(
            "%d worker processes, metrics of all on http://%s:%d/metrics (from %s)",
            len(children),
            listen.metrics_bind,
            listen.metrics_port,
            metrics_dir,
        )
        code = 0
        running = dict(children)
        deadline: float | None = None
        while running:
            for pid, child in list(running.items()):
                rc = child.poll()
                if rc is None:
                    continue
                del running[pid]
                mark_process_dead(pid, str(metrics_dir))
                child_code = 128 - rc if rc < 0 else rc
                if stop_signal:
                    log.info("worker process %d stopped (exit %d)", pid, child_code)
                    code = code or child_code
                    continue
                # never restarted silently: the whole parent goes down, visibly
                code = child_code or 1
                log.error(
                    "worker process %d exited unasked (exit %d): stopping the other %d, exit %d",
                    pid,
                    child_code,
                    len(running),
                    code,
                )
                forward(signal.SIGTERM, None)
            if stop_signal and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline and running:
                log.error(
                    "%d worker processes still running after %.0f s: killed",
                    len(running),
                    STOP_GRACE_SECONDS,
                )
                code = code or 1
                _wait_all(running, time.monotonic())
                break
            time.sleep(0.1)
        return code
    finally:
        for child in children.values():  # only on an error of the parent itself
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _wait_all(children: dict[int, subprocess.Popen[bytes]], deadline: float) -> None:
    """Wait for the children until ``deadline``, then kill those still running."""
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _die_with(parent: int) -> None:
    """A child of ``--processes``: get SIGTERM when the parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        sys.exit(1)


def _metrics_port_error(settings: Settings, exc: OSError) -> ConfigError:
    where = f"{settings.worker.metrics_bind}:{settings.worker.metrics_port}"
    return ConfigError("SCAMWATCH_METRICS_PORT", f"cannot listen on {where} ({exc.strerror})")


def _check_kafka(settings: Settings) -> None:
    """Kafka refusing the credentials, or not answering, stops the start here with the
    setting to fix (Faust would print a traceback, or retry for ever)."""
    from engine.kafka_io import check_connection

    asyncio.run(check_connection(settings.kafka))


def _check_port_free(setting: str, host: str, port: int) -> None:
    """Fail at start, naming the setting, when another process holds the port."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(setting, f"cannot listen on {host}:{port} ({exc.strerror})") from None
