"""``scamwatch worker``: run one worker (calls and web) until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path

import typer

from engine.errors import ConfigError
from engine.settings import Settings, load_settings

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
    loglevel: str = typer.Option("info", "--loglevel", help="debug, info, warning, error."),
) -> None:
    """Consume calls and web events, match them, produce alerts and dead-letters."""
    overrides: dict[str, object] = {}
    if web_port is not None:
        overrides["web_port"] = web_port
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    # a bad setting raises ConfigError: one line naming the variable, exit 2
    settings = load_settings(worker=overrides)
    sys.exit(run_worker(settings, loglevel=loglevel))


def run_worker(settings: Settings, *, loglevel: str = "info") -> int:
    """Start the worker and block until it stops; returns the process exit code."""
    import faust
    import uvloop

    from engine.metrics import WorkerMetrics
    from engine.store.redis import RedisStore
    from engine.stream.app import Dispatcher, create_app, fatal_via
    from engine.stream.follower import IndicatorFollower
    from engine.stream.processor import RecordProcessor

    logging.basicConfig(
        level=loglevel.upper(), format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )
    log.info("scamwatch worker starting with settings %s", settings.redacted())

    listen = settings.worker
    _check_port_free("SCAMWATCH_WEB_PORT", listen.web_bind, listen.web_port)
    metrics = WorkerMetrics()
    try:
        metrics.serve(listen.metrics_port, listen.metrics_bind)
    except OSError as exc:
        raise ConfigError(
            "SCAMWATCH_METRICS_PORT",
            f"cannot listen on {listen.metrics_bind}:{listen.metrics_port} ({exc.strerror})",
        ) from None
    log.info("metrics on http://%s:%d/metrics", listen.metrics_bind, listen.metrics_port)

    store = RedisStore.from_url(
        settings.redis.url.get_secret_value(), prefix=settings.redis.prefix, socket_timeout=5
    )
    follower = IndicatorFollower(
        store,
        metrics=metrics,
        default_region=settings.processing.default_region,
        poll_interval=settings.worker.indicator_poll_seconds,
    )
    # uvloop: the per-record work around our code is mostly asyncio machinery (futures,
    # callbacks, the consumer's waits), which uvloop runs in C
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # no consuming before the indicators are in (unless Redis stays down: then loudly empty)
    loop.run_until_complete(follower.load(settings.worker.snapshot_wait_seconds))

    processor = RecordProcessor(
        matcher=follower.current,
        alerts_topic=settings.topics.alerts,
        deadletter_topic=settings.topics.deadletter,
        max_record_bytes=settings.processing.max_record_bytes,
        max_output_bytes=settings.processing.max_output_bytes,
    )
    dispatcher = Dispatcher(processor, metrics, on_fatal=lambda exc: None)
    # each worker its own Faust data dir: two on one host must not share state
    datadir = (
        Path(settings.stack.state_dir).expanduser()
        / "workers"
        / f"{listen.app_id}-{listen.web_port}"
    )
    datadir.mkdir(parents=True, exist_ok=True)
    app = create_app(
        settings,
        dispatcher=dispatcher,
        follower=follower,
        web_port=settings.worker.web_port,
        datadir=datadir,
    )
    faust_worker = faust.Worker(app, loop=loop, loglevel=loglevel.upper(), quiet=True)
    dispatcher.on_fatal = fatal_via(faust_worker.crash)
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        log.critical("worker stopped after a fatal error: %r", exc)
        return 1
    return 0


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
