"""Every metric a worker exports, defined once, on a registry of the worker's own.

Names and labels are a contract (DESIGN.md, "Metrics"): dashboards and alert rules use them.

The same definitions serve one process and ``scamwatch worker --processes N``: there each
child runs with ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus-client then keeps every value
in a file of that directory) and the parent serves them all through
:func:`serve_multiprocess`. Every gauge therefore says how the parent merges it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.core.models import IndicatorType

# event ts -> verdict: sub-millisecond on a healthy worker, minutes when replaying old data
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# a few indicators build in milliseconds, a million in ~10 s
UPDATE_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BUILD_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)

OUTCOMES = ("matched", "clean", "deadletter")

# how the parent of N processes merges a gauge; "live": exited children are dropped
GaugeMerge = Literal["liveall", "livemax", "livemin", "livesum", "livemostrecent"]


def _gauge(
    name: str,
    documentation: str,
    labels: tuple[str, ...] = (),
    *,
    merge: GaugeMerge,
    registry: CollectorRegistry,
) -> Gauge:
    """A gauge that says how the parent of several processes merges it (ignored in one)."""
    return Gauge(name, documentation, labels, registry=registry, multiprocess_mode=merge)


class WorkerMetrics:
    """The worker's metrics on one registry (a fresh one per instance, so tests do not share)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, multiprocess_dir: str | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # a --processes child (PROMETHEUS_MULTIPROC_DIR, read by the worker's entry point):
        # prometheus-client keeps its values in files there, merged by the parent
        self._multiprocess = multiprocess_dir is not None
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.events = Counter(
            "scamwatch_events",
            "Input events by stream and outcome (matched, clean, deadletter).",
            ["stream", "outcome"],
            registry=r,
        )
        self.alerts = Counter(
            "scamwatch_alerts",
            "Alerts sent, by rule and severity.",
            ["rule", "severity"],
            registry=r,
        )
        self.deadletters = Counter(
            "scamwatch_deadletter",
            "Input events sent to the dead-letter topic, by stream and reason.",
            ["stream", "reason"],
            registry=r,
        )
        self.unparsed = Counter(
            "scamwatch_unparsed_values",
            "Event fields not matched because their value is not a number/host "
            "(withheld caller, garbage): normal in CDRs, not an error.",
            ["stream", "field"],
            registry=r,
        )
        # processes of one parent hold the same indicators: max, not an N-fold sum
        self.indicators = _gauge(
            "scamwatch_indicators",
            "Indicators held by the worker's matcher, by type.",
            ("type",),
            merge="livemax",
            registry=r,
        )
        # one series per process (label pid): the version-spread alert sees a laggard
        self.indicator_version = _gauge(
            "scamwatch_indicator_version",
            "Indicator store version of the matcher in use.",
            merge="liveall",
            registry=r,
        )
        # 0 as soon as one process cannot reach the store
        self.store_up = _gauge(
            "scamwatch_indicator_store_up",
            "1 when the indicator store (Redis) answered the last poll, else 0.",
            merge="livemin",
            registry=r,
        )
        self.store_errors = Counter(
            "scamwatch_indicator_store_errors",
            "Polls of the indicator store that failed (it was unreachable).",
            registry=r,
        )
        self.build_seconds = Histogram(
            "scamwatch_matcher_build_seconds",
            "Time to build a matcher from a snapshot.",
            buckets=BUILD_BUCKETS,
            registry=r,
        )
        self.update_seconds = Histogram(
            "scamwatch_matcher_update_seconds",
            "Time the event loop spent applying one batch of indicator changes to the matcher "
            "in place (a new keyword automaton is built before, in a thread).",
            buckets=UPDATE_BUCKETS,
            registry=r,
        )
        self.changes_applied = Counter(
            "scamwatch_matcher_changes_applied",
            "Indicator changes applied to the matcher in place.",
            registry=r,
        )
        self.swaps = Counter(
            "scamwatch_matcher_swaps",
            "New matcher versions put in use after an indicator change: full builds swapped in "
            "and in-place updates (the first load included).",
            registry=r,
        )
        self.snapshot_reloads = Counter(
            "scamwatch_snapshot_reloads",
            "Full snapshot loads (start, change log no longer reaching back, resync).",
            registry=r,
        )
        self.latency = Histogram(
            "scamwatch_event_latency_seconds",
            "Event ts to verdict (alert or clean or dead-letter decided).",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.send_failures = Counter(
            "scamwatch_send_failures",
            "Alert/dead-letter sends that failed for good (the worker stops, the input is not "
            "committed).",
            registry=r,
        )
        self.hunt_events = Counter(
            "scamwatch_hunt_events",
            "Retained input events read by retro-hunts, by stream.",
            ["stream"],
            registry=r,
        )
        # the partitions a host's processes hold together
        self.assigned_partitions = _gauge(
            "scamwatch_assigned_partitions",
            "Input partitions (calls and web) assigned to this worker by the consumer group.",
            merge="livesum",
            registry=r,
        )
        # a partition is one process's at a time: the value written last is the owner's
        self.consumer_lag = _gauge(
            "scamwatch_consumer_lag",
            "Records of an assigned input partition not processed yet (its high watermark "
            "minus the next offset to process), refreshed every few seconds.",
            ("topic", "partition"),
            merge="livemostrecent",
            registry=r,
        )
        self.discovered = Counter(
            "scamwatch_discovered",
            "Numbers discovered by the discover agent (a discovered_scam_number alert each).",
            registry=r,
        )
        self.discovery_expired = Counter(
            "scamwatch_discovery_expired",
            "Numbers dropped from the discovery table, last sighted a discovery window or more "
            "before the newest sighting of their partition.",
            registry=r,
        )
        self.sightings_skipped = Counter(
            "scamwatch_sightings_skipped",
            "Sightings the discover agent did not count, by reason (allowlisted, invalid).",
            ["reason"],
            registry=r,
        )
        self.alerts_suppressed = Counter(
            "scamwatch_alerts_suppressed",
            "Alerts not emitted because one of the same key was emitted within "
            "SCAMWATCH_SUPPRESS_SECONDS, by rule (the next one emitted carries the count).",
            ["rule"],
            registry=r,
        )
        self.sightings = Counter(
            "scamwatch_sightings",
            "Unknown numbers written to the sightings topic, by kind (call, page).",
            ["kind"],
            registry=r,
        )
        # every process of a parent reads every exposure: max, not an N-fold sum
        self.exposures = _gauge(
            "scamwatch_exposures",
            "Open exposures (subscribers exposed by a web alert within the journey window).",
            merge="livemax",
            registry=r,
        )
        for stream in ("calls", "web"):
            for outcome in OUTCOMES:
                self.events.labels(stream=stream, outcome=outcome)
            self.hunt_events.labels(stream=stream)
        for type_ in IndicatorType:
            self.indicators.labels(type=type_.value)
        self.store_up.set(0)

    def drop_lag(self, topic: str, partition: str) -> None:
        """A revoked partition's lag: no series in one process; 0 under ``--processes``,
        where prometheus-client cannot remove a series (the next owner's value is newer)."""
        if self._multiprocess:
            self.consumer_lag.labels(topic, partition).set(0)
        else:
            self.consumer_lag.remove(topic, partition)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` over HTTP from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)


class _ProcessCount(Collector):
    """``scamwatch_worker_processes``: the parent's live children, asked at each scrape."""

    def __init__(self, alive: Callable[[], int]) -> None:
        self._alive = alive

    def collect(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "scamwatch_worker_processes",
                "Worker processes running under this scamwatch worker --processes parent.",
                value=self._alive(),
            )
        ]


def serve_multiprocess(port: int, addr: str, path: str, alive: Callable[[], int]) -> None:
    """Serve on ``/metrics`` the metrics every child process keeps in ``path``, merged."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    registry.register(_ProcessCount(alive))
    start_http_server(port, addr=addr, registry=registry)


def mark_process_dead(pid: int, path: str) -> None:
    """Drop an exited child's live gauges from what :func:`serve_multiprocess` reports."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
