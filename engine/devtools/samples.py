"""The bundled sample feeds the demo, the traffic generator and the tests load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.core.models import IndicatorType
from engine.store.base import IndicatorStore
from engine.store.loading import LoadReport, load_feed

SAMPLE_FEEDS_DIR = Path(__file__).resolve().parent / "data" / "samples" / "feeds"


@dataclass(frozen=True, slots=True)
class SampleFeed:
    """One bundled sample feed and how to load it (from the directory's manifest.json)."""

    path: Path
    format: str
    type_: IndicatorType | None
    allowlist: bool
    source: str | None


def sample_feeds() -> list[SampleFeed]:
    """The bundled sample feeds, in the order the demo loads them."""
    manifest = orjson.loads((SAMPLE_FEEDS_DIR / "manifest.json").read_bytes())
    return [
        SampleFeed(
            path=SAMPLE_FEEDS_DIR / entry["file"],
            format=entry["format"],
            type_=IndicatorType(entry["type"]) if entry.get("type") else None,
            allowlist=bool(entry.get("allowlist", False)),
            source=entry.get("source"),
        )
        for entry in manifest["feeds"]
    ]


def load_sample_feeds(
    store: IndicatorStore, *, region: str = "US"
) -> list[tuple[SampleFeed, LoadReport]]:
    """Load every bundled sample feed into ``store`` (indicators or allowlist, as the
    manifest says); what each load did."""
    return [
        (
            feed,
            load_feed(
                feed.path,
                store,
                format=feed.format,
                type_=feed.type_,
                source=feed.source,
                region=region,
                allowlist=feed.allowlist,
            ),
        )
        for feed in sample_feeds()
    ]
