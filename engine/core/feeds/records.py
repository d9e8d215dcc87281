"""indicator.v1 records, and the feed formats made of them: CSV (one record per row, the
header names the fields) and JSON lines (one record per line).

Records follow indicator.v1: ``type``, ``value``, ``source`` (and ``sources``, written by
export), ``severity`` (default ``high``), ``confidence`` (0-100), ``tags``, ``valid_from``,
``valid_until`` (RFC 3339 or epoch milliseconds), ``description``, ``reference``. Every format
turns what it reads into such records and hands them to :meth:`FeedContext.record`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.core.models import DEFAULT_CONFIDENCE, Indicator, IndicatorType, Severity
from engine.core.normalize import normalize
from engine.core.timestamps import RFC3339, format_rfc3339, is_epoch_ms, parse_rfc3339
from engine.errors import FeedError, FeedLocation, NormalizationError

RECORD_FIELDS = (
    "type",
    "value",
    "source",
    "sources",
    "severity",
    "confidence",
    "tags",
    "valid_from",
    "valid_until",
    "description",
    "reference",
)
_LIST_SEPARATOR = ";"  # tags/sources inside one CSV cell


def indicator_to_record(ind: Indicator) -> dict[str, object]:
    """The indicator.v1 record of ``ind`` (what export writes, one JSON object per line).

    ``source`` is the first of ``sources`` (for consumers that know one source only) and
    ``sources`` all of them, so that loading an export gives back the same entries."""
    return {
        "type": ind.type.value,
        "value": ind.value,
        "source": ind.sources[0] if ind.sources else None,
        "sources": list(ind.sources),
        "severity": ind.severity.value,
        "confidence": ind.confidence,
        "tags": list(ind.tags),
        "valid_from": format_timestamp(ind.valid_from),
        "valid_until": format_timestamp(ind.valid_until),
        "description": ind.description,
        "reference": ind.reference,
    }


def indicator_from_record(
    rec: Mapping[str, object], *, source: str | None, region: str
) -> Indicator:
    """Validate and normalize one indicator.v1 record.

    ``source`` is used when the record names none. Raises :class:`FeedError` (or
    :class:`NormalizationError` for the value) whose message starts with the field name."""
    get = rec.get  # loads call this a million times: empty fields skip their parser
    type_ = parse_type(get("type"))
    raw_value = get("value")
    if not isinstance(raw_value, str) or not raw_value.strip():
        raise FeedError("value: missing or empty")
    try:
        value = normalize(type_, raw_value, region)
    except NormalizationError as exc:
        raise FeedError(f"value: {exc}") from exc

    raw = get("sources")
    sources = _string_list("sources", raw) if raw else ()
    raw = get("source")
    own_source = _optional_text("source", raw) if raw is not None else ""
    if own_source:
        sources = (own_source, *sources)
    if not sources and source:
        sources = (source,)
    raw = get("tags")
    tags = _string_list("tags", raw) if raw else ()
    raw = get("valid_from")
    valid_from = parse_timestamp("valid_from", raw) if raw is not None else None
    raw = get("valid_until")
    valid_until = parse_timestamp("valid_until", raw) if raw is not None else None
    if valid_from is not None and valid_until is not None and valid_until < valid_from:
        raise FeedError("valid_until: before valid_from")
    raw = get("description")
    description = _optional_text("description", raw) if raw is not None else ""
    raw = get("reference")
    reference = _optional_text("reference", raw) if raw is not None else ""

    return Indicator(
        type_,
        value,
        sources if len(sources) < 2 else tuple(sorted(set(sources))),
        parse_severity(get("severity")),
        parse_confidence(get("confidence")),
        tags if len(tags) < 2 else tuple(sorted(set(tags))),
        valid_from,
        valid_until,
        description,
        reference,
    )


_TYPE_NAMES = {t.value: t for t in IndicatorType}
_SEVERITY_NAMES = {s.value: s for s in Severity}


def parse_type(raw: object) -> IndicatorType:
    known_type = _TYPE_NAMES.get(raw) if isinstance(raw, str) else None
    if known_type is not None:  # the common case, without strip/lower/enum lookup
        return known_type
    if not isinstance(raw, str) or not raw.strip():
        raise FeedError("type: missing")
    try:
        return IndicatorType(raw.strip().lower())
    except ValueError:
        known = ", ".join(t.value for t in IndicatorType)
        raise FeedError(f"type: unknown type {raw!r} (expected one of {known})") from None


def parse_severity(raw: object) -> Severity:
    severity = _SEVERITY_NAMES.get(raw) if isinstance(raw, str) else None
    if severity is not None:
        return severity
    if raw is None or raw == "":
        return Severity.HIGH
    if not isinstance(raw, str):
        raise FeedError(f"severity: expected a string, got {type(raw).__name__}")
    try:
        return Severity(raw.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in Severity)
        raise FeedError(f"severity: unknown severity {raw!r} (expected one of {known})") from None


def parse_confidence(raw: object) -> int:
    if type(raw) is int and 0 <= raw <= 100:
        return raw
    if raw is None or raw == "":
        return DEFAULT_CONFIDENCE
    if isinstance(raw, bool):
        raise FeedError("confidence: expected an integer 0-100, got a boolean")
    if isinstance(raw, str):
        try:
            number = int(raw)  # int() ignores surrounding blanks
        except ValueError:
            raise FeedError(f"confidence: {raw!r} is not an integer") from None
    elif isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    else:
        raise FeedError(f"confidence: expected an integer 0-100, got {raw!r}")
    if not 0 <= number <= 100:
        raise FeedError(f"confidence: {number} is outside 0-100")
    return number


def parse_timestamp(field: str, raw: object) -> int | None:
    """RFC 3339 date-time or epoch milliseconds (an integer, or digits in a CSV cell) →
    epoch milliseconds, as in schemas/indicator.v1.json. An offset-less time is UTC."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise FeedError(f"{field}: expected RFC 3339 or epoch milliseconds, got {raw!r}")
    text = raw.strip() if isinstance(raw, str) else ""
    if isinstance(raw, int) or text.isdigit():
        ms = int(raw)
        if not is_epoch_ms(ms):
            raise FeedError(f"{field}: {ms} is not epoch milliseconds in 2000-2100")
        return ms
    if not RFC3339.fullmatch(text):
        raise FeedError(f"{field}: {raw!r} is neither an RFC 3339 date-time nor epoch ms")
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise FeedError(f"{field}: {raw!r} is not a valid date-time") from None


def format_timestamp(ms: int | None) -> str | None:
    """Epoch milliseconds → RFC 3339 UTC with milliseconds (``2026-01-31T00:00:00.000Z``)."""
    return None if ms is None else format_rfc3339(ms)


def _optional_text(field: str, raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise FeedError(f"{field}: expected a string, got {type(raw).__name__}")
    return raw.strip()


def _string_list(field: str, raw: object) -> tuple[str, ...]:
    """A list of strings, or one string separated by ``;`` (CSV cells)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        items: list[object] = list(raw.split(_LIST_SEPARATOR))
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise FeedError(f"{field}: expected a list of strings, got {type(raw).__name__}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise FeedError(f"{field}: expected strings, got {item!r}")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A line or object that is fine but not something scamwatch matches (a file hash, an IP
    address, a MISP ``AS`` attribute, one marked not for detection): counted, never an error,
    so ``--strict`` still loads the rest."""

    reason: str
    file: str | None = None
    line: int | None = None
    object_id: str | None = None

    @property
    def location(self) -> FeedLocation:
        return FeedLocation(self.file, self.line, self.object_id)

    def __str__(self) -> str:  # printed as a FeedError is: "file:line object-id: reason"
        where = str(self.location)
        return f"{where}: {self.reason}" if where else self.reason


FeedItem = Indicator | FeedError | SkippedEntry


@dataclass(frozen=True, slots=True)
class FeedContext:
    file: str
    source: str
    region: str
    type_: IndicatorType | None
    # --map FIELD=COLUMN (or FIELD=constant when no column has that name), for mapped CSV
    mapping: tuple[tuple[str, str], ...] = ()

    def record(
        self, rec: Mapping[str, object], *, line: int | None = None, object_id: str | None = None
    ) -> Indicator | FeedError:
        """One record → an Indicator, or the FeedError saying where and why."""
        if self.type_ is not None and not rec.get("type"):
            rec = {**rec, "type": self.type_.value}
        try:
            return indicator_from_record(rec, source=self.source, region=self.region)
        except FeedError as exc:
            return self.error(exc.reason, line=line, object_id=object_id)
        except NormalizationError as exc:
            return self.error(f"value: {exc}", line=line, object_id=object_id)

    def error(
        self, reason: str, *, line: int | None = None, object_id: str | None = None
    ) -> FeedError:
        return FeedError(reason, file=self.file, line=line, object_id=object_id)

    def skip(
        self, reason: str, *, line: int | None = None, object_id: str | None = None
    ) -> SkippedEntry:
        return SkippedEntry(reason, file=self.file, line=line, object_id=object_id)


def _open_text(path: Path, ctx: FeedContext) -> Any:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark
        return path.open(encoding="utf-8-sig", newline="", errors="strict")
    except OSError as exc:
        raise ctx.error(f"cannot read: {exc.strerror or exc}") from exc


def numbered_lines(path: Path, ctx: FeedContext) -> Iterator[tuple[int, str] | FeedError]:
    """Numbered lines; a line that is not UTF-8 is a FeedError, the rest go on."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ctx.error(f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ctx.error(f"not UTF-8 ({exc.reason} at byte {exc.start})", line=number)
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text.rstrip("\r\n")


def read_jsonl(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    for item in numbered_lines(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, text = item
        if not text.strip():
            continue
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield ctx.error(f"not valid JSON: {exc}", line=number)
            continue
        if not isinstance(rec, dict):
            yield ctx.error(f"expected a JSON object, got {type(rec).__name__}", line=number)
            continue
        yield ctx.record(rec, line=number)


def csv_rows(
    path: Path, ctx: FeedContext, *, on_comment: Callable[[str], None] | None = None
) -> Iterator[tuple[int, list[str]] | FeedError]:
    """The rows of a CSV file with the line each starts on; blank rows and ``#`` comment lines
    (handed to ``on_comment``) are left out. CRLF, quoted cells and a byte-order mark are
    read as the csv module reads them. A file that stops being UTF-8 or CSV ends with one
    FeedError: the reader works ahead in blocks, so the rest cannot be trusted."""
    handle = _open_text(path, ctx)
    starts: list[int] = []  # the physical lines the csv reader took for the current row

    def lines() -> Iterator[str]:
        for number, text in enumerate(handle, start=1):
            if text.lstrip().startswith("#"):
                if on_comment is not None:
                    on_comment(text.strip())
                continue
            starts.append(number)
            yield text

    with handle:
        reader = csv.reader(lines())
        try:
            for row in reader:
                line = starts[0] if starts else reader.line_num
                starts.clear()
                if any(cell.strip() for cell in row):
                    yield line, row
        except UnicodeDecodeError as exc:
            yield ctx.error(f"not UTF-8 ({exc.reason}); reading stopped", line=_next(starts))
        except csv.Error as exc:
            yield ctx.error(f"CSV: {exc}; reading stopped", line=_next(starts))


def _next(starts: list[int]) -> int | None:
    return starts[0] if starts else None


def header_columns(row: list[str]) -> list[str]:
    """A header row's column names, compared case-insensitively (``Company_Phone_Number``)."""
    return [name.strip().lstrip("#").strip().lower() for name in row]


def too_many_cells(
    row: list[str], columns: list[str], ctx: FeedContext, line: int
) -> FeedError | None:
    """The error for a row with more cells than the header has columns (None: it fits)."""
    if len(row) <= len(columns):
        return None
    return ctx.error(
        f"{len(row)} cells for {len(columns)} columns (a comma in a value needs quotes)",
        line=line,
    )


def read_csv(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    """A CSV whose header names indicator.v1 fields, or any CSV read through ``ctx.mapping``."""
    rows = csv_rows(path, ctx)
    columns: list[str] | None = None
    fields: dict[str, int] = {}
    constants: dict[str, str] = {}
    for item in rows:
        if isinstance(item, FeedError):
            yield item
            continue
        line, row = item
        if columns is None:
            columns = header_columns(row)
            if ctx.mapping:
                fields, constants = _mapped_fields(columns, ctx, line)
            else:
                _check_record_header(columns, ctx, line)
                fields = {name: index for index, name in enumerate(columns) if name}
            continue
        if (wide := too_many_cells(row, columns, ctx, line)) is not None:
            yield wide
            continue
        rec: dict[str, object] = dict(constants)
        width = len(row)
        for name, index in fields.items():  # an unnamed column is ignored
            if index < width:
                rec[name] = row[index]
        yield ctx.record(rec, line=line)


def _check_record_header(columns: list[str], ctx: FeedContext, line: int) -> None:
    if "value" not in columns:
        raise ctx.error(
            f"the header row has no 'value' column (got {', '.join(columns)}); columns are "
            f"indicator.v1 field names ({', '.join(RECORD_FIELDS)}), or map them with "
            "--map value=COLUMN",
            line=line,
        )
    if "type" not in columns and ctx.type_ is None:
        raise ctx.error("no 'type' column and no --type given", line=line)


def _mapped_fields(
    columns: list[str], ctx: FeedContext, line: int
) -> tuple[dict[str, int], dict[str, str]]:
    """``--map FIELD=COLUMN`` → (field → column index, field → constant). A right-hand side
    that names no column is a constant for every row (``--map type=phone``); ``value`` must
    name a column."""
    fields: dict[str, int] = {}
    constants: dict[str, str] = {}
    for name, target in ctx.mapping:
        wanted = target.strip().lower()
        if wanted in columns:
            fields[name] = columns.index(wanted)
        elif name == "value":
            raise ctx.error(
                f"--map value={target}: the header row has no column {target!r} "
                f"(got {', '.join(columns)})",
                line=line,
            )
        else:
            constants[name] = target
    if "type" not in fields and "type" not in constants and ctx.type_ is None:
        raise ctx.error("no type: add --map type=COLUMN, --map type=TYPE or --type", line=line)
    return fields, constants


def load_json(path: Path, ctx: FeedContext) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ctx.error(f"cannot read: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ctx.error(f"not valid JSON: {exc}") from exc
