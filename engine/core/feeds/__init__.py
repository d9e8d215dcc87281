"""Indicator feeds: CSV, plain text, JSON lines, STIX 2.1 bundles, MISP events, and the
public lists as published (hosts files, URL lists, URLhaus, PhishTank, FTC Do-Not-Call).

Every reader yields one normalized :class:`Indicator` per good line or object, one
:class:`FeedError` (file, line or object id, reason) per bad one, and one
:class:`SkippedEntry` per valid one scamwatch does not match (a STIX file hash, a MISP
``AS``), and goes on: a bad line is data, not a crash. Values go through
:func:`engine.core.normalize.normalize`, the same function the matcher uses, so a feed's
``(888) 555-0142`` and an event's ``+18885550142`` meet.

Records follow indicator.v1: ``type``, ``value``, ``source`` (and ``sources``, written by
export), ``severity`` (default ``high``), ``confidence`` (0-100), ``tags``, ``valid_from``,
``valid_until`` (RFC 3339 or epoch milliseconds), ``description``, ``reference``.

Where a record names no source, ``source`` (the ``--source`` option) is used, else the feed's
file name. STIX patterns are read by the ``stix2-patterns`` ANTLR parser, never by slicing.

One module per kind of format: :mod:`.records` (indicator.v1 records, CSV, JSON lines, CSV
through ``--map``), :mod:`.text` (plain text, URL lists, hosts files), :mod:`.exports`
(URLhaus, PhishTank, FTC Do-Not-Call CSV exports), :mod:`.stix` (STIX 2.1 bundles),
:mod:`.misp` (MISP events); :mod:`.detect` tells them apart by content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from engine.core.feeds.detect import detect_format
from engine.core.feeds.exports import (
    confidence_from_reports,
    read_ftc_dnc,
    read_phishtank,
    read_urlhaus,
)
from engine.core.feeds.misp import misp_events, read_misp
from engine.core.feeds.records import (
    RECORD_FIELDS,
    FeedContext,
    FeedItem,
    SkippedEntry,
    format_timestamp,
    indicator_from_record,
    indicator_to_record,
    parse_timestamp,
    read_csv,
    read_jsonl,
)
from engine.core.feeds.stix import StixPatternValues, read_stix, stix_objects, stix_pattern_values
from engine.core.feeds.text import read_hosts, read_txt, read_urls
from engine.core.models import IndicatorType
from engine.errors import FeedError

__all__ = [
    "FORMATS",
    "LINE_FORMATS",
    "RECORD_FIELDS",
    "FeedContext",
    "FeedItem",
    "SkippedEntry",
    "StixPatternValues",
    "confidence_from_reports",
    "format_timestamp",
    "guess_format",
    "indicator_from_record",
    "indicator_to_record",
    "misp_events",
    "parse_mapping",
    "parse_timestamp",
    "read_feed",
    "stix_objects",
    "stix_pattern_values",
]

_READERS: dict[str, Callable[[Path, FeedContext], Iterator[FeedItem]]] = {
    "csv": read_csv,
    "txt": read_txt,
    "jsonl": read_jsonl,
    "stix": read_stix,
    "misp": read_misp,
    "hosts": read_hosts,
    "urls": read_urls,
    "urlhaus": read_urlhaus,
    "phishtank": read_phishtank,
    "ftc-dnc": read_ftc_dnc,
}
FORMATS = tuple(_READERS)
# formats read line by line (a progress bar can count the lines)
LINE_FORMATS = ("csv", "txt", "jsonl", "hosts", "urls", "urlhaus", "phishtank", "ftc-dnc")


def guess_format(path: Path) -> str:
    """The feed format of ``path``: from the content (:mod:`.detect`), as the extension says
    little; ``.jsonl``/``.ndjson`` are JSON lines."""
    return detect_format(path, FORMATS)


def parse_mapping(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``--map FIELD=COLUMN`` options → (field, column) pairs; FIELD is an indicator.v1 field
    name. FeedError says what is wrong with a pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        name = name.strip().lower()
        if not sep or not name or not target.strip():
            raise FeedError(f"--map {pair!r}: expected FIELD=COLUMN (e.g. value=Phone)")
        if name not in RECORD_FIELDS:
            raise FeedError(
                f"--map {pair!r}: {name!r} is not an indicator.v1 field "
                f"({', '.join(RECORD_FIELDS)})"
            )
        out[name] = target.strip()
    if out and "value" not in out:
        raise FeedError("--map: the value column is missing (--map value=COLUMN)")
    return tuple(out.items())


def read_feed(
    path: Path,
    *,
    format: str | None = None,
    type_: IndicatorType | None = None,
    source: str | None = None,
    region: str = "US",
    mapping: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
) -> Iterator[FeedItem]:
    """Read one feed file: an Indicator per good line/object, a FeedError per bad one, a
    SkippedEntry per valid one scamwatch does not match (a file hash, an IP address).

    ``type_`` is required for plain text and is the default type of CSV/JSONL records that
    have none. ``mapping`` (``--map``) reads any CSV: indicator.v1 field → column name (or a
    constant). A file that cannot be opened or has no usable structure (a CSV without
    header, a JSON file that is not a bundle/event) raises FeedError once, before yielding."""
    pairs = tuple(mapping.items()) if isinstance(mapping, Mapping) else tuple(mapping)
    if pairs and format not in (None, "csv"):
        raise FeedError(f"--map reads a CSV; it cannot be used with --format {format}")
    fmt = "csv" if pairs else format or guess_format(path)
    if fmt not in _READERS:
        raise FeedError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    ctx = FeedContext(
        file=str(path), source=source or path.name, region=region, type_=type_, mapping=pairs
    )
    return _READERS[fmt](path, ctx)
