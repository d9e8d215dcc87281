"""The format of a feed file, told from its content: an extension such as ``.txt``,
``.csv`` or ``.stix2`` says little (a URLhaus dump is ``csv.txt``, a hosts file has none).

The first 256 KiB are read: JSON is a STIX bundle, a MISP event or JSON lines; a CSV header
names URLhaus, PhishTank, the FTC's Do-Not-Call export or indicator.v1 fields; lines that
are nearly all ``ADDRESS NAME`` are a hosts file, nearly all URLs a URL list. ``--format``
overrides all of this."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import orjson

from engine.core.feeds.exports import FTC_PHONE_COLUMN, URLHAUS_COLUMNS
from engine.core.feeds.misp import misp_events
from engine.core.feeds.records import header_columns
from engine.core.feeds.text import is_ip_address
from engine.errors import FeedError

_SAMPLE_BYTES = 256 * 1024
_SAMPLE_LINES = 200
_MOSTLY = 0.9  # share of sampled lines that must look alike (lists carry a few odd lines)
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
_PLAIN_TEXT_SUFFIXES = ("", ".txt", ".lst", ".list", ".hosts")
# http://, hxxps://, hXXp[:]//, h**p[://], ftp://: a URL, defanged or not
_URL_START = re.compile(r"^[a-z*][a-z0-9*+.-]*(?:://|\[:\]//|\[://\])", re.IGNORECASE)
_INLINE_COMMENT = re.compile(r"\s+#.*$")


def detect_format(path: Path, formats: tuple[str, ...]) -> str:
    """The format of the feed at ``path``, or FeedError when neither its extension nor its
    content tells (``formats`` names the choices for --format in the message)."""
    suffix = path.suffix.lower()
    if suffix in _JSON_LINES_SUFFIXES:
        return "jsonl"
    try:
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
            complete = not handle.read(1)
    except OSError as exc:
        raise FeedError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if text.lstrip().startswith(("{", "[")):
        return _json_format(path, text)
    lines = text.splitlines()
    if not complete and lines:
        lines.pop()  # the sample may end inside a line
    fmt = _line_format(lines[: _SAMPLE_LINES * 5])
    if fmt is not None:
        return fmt
    if suffix == ".csv":
        return "csv"  # read_csv says what its header lacks (and names --map)
    if suffix in _PLAIN_TEXT_SUFFIXES:
        return "txt"
    raise FeedError(
        f"cannot tell the format from the extension {suffix or '(none)'!r} or from the "
        f"content; use --format ({'|'.join(formats)})",
        file=str(path),
    )


def _json_format(path: Path, text: str) -> str:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    try:
        document = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        document = None  # a document over several lines: read it whole
    is_record = isinstance(document, dict) and "value" in document
    if is_record and _json_document_format(document) is None:
        return "jsonl"  # indicator.v1 records, one per line
    if document is None:
        try:
            document = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise FeedError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"not valid JSON: {exc}", file=str(path)) from exc
    fmt = _json_document_format(document)
    if fmt is None:
        raise FeedError(
            "JSON that is neither a STIX bundle nor a MISP event (nor indicator.v1 JSON "
            "lines); use --format",
            file=str(path),
        )
    return fmt


def _json_document_format(document: object) -> str | None:
    if isinstance(document, dict) and document.get("type") == "bundle":
        return "stix"
    if misp_events(document) is not None:
        return "misp"
    return None


def _line_format(lines: list[str]) -> str | None:
    comments = [line.strip() for line in lines if line.lstrip().startswith("#")]
    values = [
        _INLINE_COMMENT.sub("", line).strip()
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]
    urlhaus_header = list(URLHAUS_COLUMNS[:3])
    for comment in comments:
        if header_columns(comment.lstrip("#").split(","))[:3] == urlhaus_header:
            return "urlhaus"
    if values:
        header = header_columns(next(csv.reader([values[0]]), []))
        if header[:3] == urlhaus_header:
            return "urlhaus"
        banner = any("urlhaus" in comment.lower() for comment in comments)
        if banner and len(header) >= len(URLHAUS_COLUMNS) - 1:
            return "urlhaus"  # the banner without its commented header line
        if "phish_id" in header and "url" in header:
            return "phishtank"
        if FTC_PHONE_COLUMN in header:
            return "ftc-dnc"
        if "value" in header and len(header) > 1:
            return "csv"
    sample = [value for value in values if value][:_SAMPLE_LINES]
    if not sample:
        return None
    if _share(sample, _is_hosts_line) >= _MOSTLY:
        return "hosts"
    if _share(sample, _URL_START.match) >= _MOSTLY:
        return "urls"
    return None


def _is_hosts_line(line: str) -> bool:
    tokens = line.split()
    return len(tokens) >= 2 and is_ip_address(tokens[0])


def _share(sample: list[str], test: Callable[[str], object]) -> float:
    return sum(1 for line in sample if test(line)) / len(sample)
