"""Indicator feeds: CSV, plain text, JSON lines, STIX 2.1 bundles and MISP events.

Every reader yields one normalized :class:`Indicator` per good line or object and one
:class:`FeedError` (file, line or object id, reason) per bad one, and goes on: a bad line is
data, not a crash. Values go through :func:`engine.core.normalize.normalize`, the same
function the matcher uses, so a feed's ``(888) 555-0142`` and an event's ``+18885550142`` meet.

Records follow indicator.v1: ``type``, ``value``, ``source`` (and ``sources``, written by
export), ``severity`` (default ``high``), ``confidence`` (0-100), ``tags``, ``valid_from``,
``valid_until`` (RFC 3339 or epoch milliseconds), ``description``, ``reference``.

Where a record names no source, ``source`` (the ``--source`` option) is used, else the feed's
file name. STIX patterns are read by the ``stix2-patterns`` ANTLR parser, never by slicing.

One module per kind of format: :mod:`.records` (indicator.v1 records, CSV, JSON lines),
:mod:`.text` (plain text), :mod:`.stix` (STIX 2.1 bundles), :mod:`.misp` (MISP events).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from engine.core.feeds.misp import misp_events, read_misp
from engine.core.feeds.records import (
    RECORD_FIELDS,
    FeedContext,
    format_timestamp,
    indicator_from_record,
    indicator_to_record,
    parse_timestamp,
    read_csv,
    read_jsonl,
)
from engine.core.feeds.stix import read_stix, stix_pattern_values
from engine.core.feeds.text import read_txt
from engine.core.models import Indicator, IndicatorType
from engine.errors import FeedError

__all__ = [
    "FORMATS",
    "RECORD_FIELDS",
    "format_timestamp",
    "guess_format",
    "indicator_from_record",
    "indicator_to_record",
    "parse_timestamp",
    "read_feed",
    "stix_pattern_values",
]

FORMATS = ("csv", "txt", "jsonl", "stix", "misp")

_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "txt",
    ".lst": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def guess_format(path: Path) -> str:
    """The feed format from the file extension; ``.json`` files are opened to tell a STIX
    bundle (``"type": "bundle"``) from a MISP event (``"Event"``)."""
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix != ".json":
        raise FeedError(
            f"cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"use --format ({'|'.join(FORMATS)})",
            file=str(path),
        )
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise FeedError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"not valid JSON: {exc}", file=str(path)) from exc
    if isinstance(document, dict) and document.get("type") == "bundle":
        return "stix"
    if misp_events(document) is not None:
        return "misp"
    raise FeedError(
        "a .json file that is neither a STIX bundle nor a MISP event; use --format",
        file=str(path),
    )


def read_feed(
    path: Path,
    *,
    format: str | None = None,
    type_: IndicatorType | None = None,
    source: str | None = None,
    region: str = "US",
) -> Iterator[Indicator | FeedError]:
    """Read one feed file: an Indicator per good line/object, a FeedError per bad one.

    ``type_`` is required for plain text and is the default type of CSV/JSONL records that
    have none. A file that cannot be opened or has no usable structure (a CSV without header,
    a JSON file that is not a bundle/event) raises FeedError once, before yielding."""
    fmt = format or guess_format(path)
    if fmt not in FORMATS:
        raise FeedError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    ctx = FeedContext(file=str(path), source=source or path.name, region=region, type_=type_)
    readers = {
        "csv": read_csv,
        "txt": read_txt,
        "jsonl": read_jsonl,
        "stix": read_stix,
        "misp": read_misp,
    }
    return readers[fmt](path, ctx)
