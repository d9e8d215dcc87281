"""Reading a worker's /metrics: keys, sums over labels, a real HTTP scrape."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from engine.devtools.scrape import MetricsScrape, sample_key, scrape_metrics


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    events = Counter("scamwatch_events", "events", ["stream", "outcome"], registry=registry)
    events.labels("calls", "matched").inc(3)
    events.labels("web", "matched").inc(2)
    events.labels("web", "clean").inc(5)
    Gauge("scamwatch_indicator_version", "version", registry=registry).set(42)
    latency = Histogram(
        "scamwatch_event_latency_seconds",
        "latency",
        ["stream"],
        buckets=(0.1, 1.0),
        registry=registry,
    )
    latency.labels("calls").observe(0.05)
    latency.labels("web").observe(0.5)
    return registry


def test_samples_by_key_and_sums() -> None:
    scrape = MetricsScrape(generate_latest(_registry()).decode())
    assert scrape["scamwatch_indicator_version"] == 42
    assert scrape['scamwatch_events_total{outcome="clean",stream="web"}'] == 5
    assert scrape.total("scamwatch_events_total") == 10
    assert scrape.total("scamwatch_events_total", outcome="matched") == 5
    assert scrape.total("scamwatch_events_total", outcome="matched", stream="web") == 2
    assert scrape.total("scamwatch_events_total", outcome="nothing") == 0
    assert scrape.by_label("scamwatch_events_total", "outcome") == {"matched": 5, "clean": 5}
    buckets = scrape.by_label("scamwatch_event_latency_seconds_bucket", "le")
    assert buckets == {"0.1": 1, "1.0": 2, "+Inf": 2}
    assert scrape.families["scamwatch_event_latency_seconds"].type == "histogram"
    assert sample_key("m", {"b": "2", "a": "1"}) == 'm{a="1",b="2"}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scrape_metrics_over_http_and_nothing_listening() -> None:
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=_registry())
    try:
        assert scrape_metrics(port).total("scamwatch_events_total", stream="calls") == 3
    finally:
        server.shutdown()
        thread.join(timeout=5)
    with pytest.raises(OSError):
        scrape_metrics(_free_port(), timeout=1)
