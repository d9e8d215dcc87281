"""Every metric a worker exports, defined once, on a registry of the worker's own.

Names and labels are a contract (DESIGN.md, "Metrics"): dashboards and alert rules use them.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

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
BUILD_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)

OUTCOMES = ("matched", "clean", "deadletter")


class WorkerMetrics:
    """The worker's metrics on one registry (a fresh one per instance, so tests do not share)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
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
        self.indicators = Gauge(
            "scamwatch_indicators",
            "Indicators held by the worker's matcher, by type.",
            ["type"],
            registry=r,
        )
        self.indicator_version = Gauge(
            "scamwatch_indicator_version",
            "Indicator store version of the matcher in use.",
            registry=r,
        )
        self.store_up = Gauge(
            "scamwatch_indicator_store_up",
            "1 when the indicator store (Redis) answered the last poll, else 0.",
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
        self.swaps = Counter(
            "scamwatch_matcher_swaps",
            "Matchers swapped in after an indicator change (the first load included).",
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
        self.assigned_partitions = Gauge(
            "scamwatch_assigned_partitions",
            "Input partitions (calls and web) assigned to this worker by the consumer group.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "scamwatch_consumer_lag",
            "Records of an assigned input partition not processed yet (its high watermark "
            "minus the next offset to process), refreshed every few seconds.",
            ["topic", "partition"],
            registry=r,
        )
        for stream in ("calls", "web"):
            for outcome in OUTCOMES:
                self.events.labels(stream=stream, outcome=outcome)
        for type_ in IndicatorType:
            self.indicators.labels(type=type_.value)
        self.store_up.set(0)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` over HTTP from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
