"""Reading a worker's ``/metrics`` (prometheus_client's own parser): the demo, the
benchmarks and the tests scrape workers this one way."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def sample_key(name: str, labels: Mapping[str, str]) -> str:
    """``name{label="v",...}`` with the labels sorted (just ``name`` without labels)."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class MetricsScrape(Mapping[str, float]):
    """One scrape: every sample by :func:`sample_key`, the parsed families by name, and sums
    of a sample over its labels."""

    __slots__ = ("_by_key", "_samples", "families")

    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {
            family.name: family for family in text_string_to_metric_families(text)
        }
        self._samples: list[Sample] = [s for f in self.families.values() for s in f.samples]
        self._by_key = {sample_key(s.name, s.labels): s.value for s in self._samples}

    def __getitem__(self, key: str) -> float:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self._samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """The samples called ``name`` summed by the value of ``label`` (``""`` when absent)."""
        out: dict[str, float] = {}
        for s in self._samples:
            if s.name == name:
                value = s.labels.get(label, "")
                out[value] = out.get(value, 0.0) + s.value
        return out


def scrape_metrics(port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> MetricsScrape:
    """GET ``http://host:port/metrics`` and parse it; :class:`OSError` when nothing answers."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
        text: str = resp.read().decode()
    return MetricsScrape(text)
