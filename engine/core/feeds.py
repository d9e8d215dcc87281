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
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from stix2patterns.exceptions import ParseException
from stix2patterns.v21.grammars.STIXPatternListener import STIXPatternListener
from stix2patterns.v21.pattern import Pattern

from engine.core.models import DEFAULT_CONFIDENCE, Indicator, IndicatorType, Severity
from engine.core.normalize import normalize
from engine.errors import FeedError, NormalizationError

FORMATS = ("csv", "txt", "jsonl", "stix", "misp")

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# epoch milliseconds must fall in 2000-01-01 .. 2100-01-01 (catches epoch seconds)
_MIN_MS = 946_684_800_000
_MAX_MS = 4_102_444_800_000
# RFC 3339 date-time, as schemas/indicator.v1.json says (fromisoformat alone takes more)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|z|[+-][0-9]{2}:[0-9]{2})?"
)

_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "txt",
    ".lst": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# STIX observable paths that become indicators (object type, property path)
_STIX_OBSERVABLES: dict[tuple[str, tuple[str, ...]], IndicatorType] = {
    ("domain-name", ("value",)): IndicatorType.DOMAIN,
    ("url", ("value",)): IndicatorType.URL,
}

# MISP attribute types that become indicators
_MISP_TYPES = {
    "phone-number": IndicatorType.PHONE,
    "domain": IndicatorType.DOMAIN,
    "hostname": IndicatorType.DOMAIN,
    "url": IndicatorType.URL,
}
# MISP threat_level_id (1 high .. 3 low, 4 undefined) → severity
_MISP_THREAT_LEVELS = {"1": Severity.HIGH, "2": Severity.MEDIUM, "3": Severity.LOW}


# --------------------------------------------------------------------------- format


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
    if _misp_events(document) is not None:
        return "misp"
    raise FeedError(
        "a .json file that is neither a STIX bundle nor a MISP event; use --format",
        file=str(path),
    )


# --------------------------------------------------------------------------- records


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
        if not _MIN_MS <= ms <= _MAX_MS:
            raise FeedError(f"{field}: {ms} is not epoch milliseconds in 2000-2100")
        return ms
    if not _RFC3339.fullmatch(text):
        raise FeedError(f"{field}: {raw!r} is neither an RFC 3339 date-time nor epoch ms")
    try:
        moment = datetime.fromisoformat(text.upper())  # 3.11 refuses a lower-case t/z
    except ValueError:
        raise FeedError(f"{field}: {raw!r} is not a valid date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def format_timestamp(ms: int | None) -> str | None:
    """Epoch milliseconds → RFC 3339 UTC with milliseconds (``2026-01-31T00:00:00.000Z``)."""
    if ms is None:
        return None
    moment = _EPOCH + ms * _ONE_MS
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


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


# --------------------------------------------------------------------------- reading


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
    ctx = _Context(file=str(path), source=source or path.name, region=region, type_=type_)
    readers = {
        "csv": _read_csv,
        "txt": _read_txt,
        "jsonl": _read_jsonl,
        "stix": _read_stix,
        "misp": _read_misp,
    }
    return readers[fmt](path, ctx)


@dataclass(frozen=True, slots=True)
class _Context:
    file: str
    source: str
    region: str
    type_: IndicatorType | None

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


def _open_text(path: Path, ctx: _Context) -> Any:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark
        return path.open(encoding="utf-8-sig", newline="", errors="strict")
    except OSError as exc:
        raise ctx.error(f"cannot read: {exc.strerror or exc}") from exc


def _lines(path: Path, ctx: _Context) -> Iterator[tuple[int, str] | FeedError]:
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


_INLINE_COMMENT = re.compile(r"\s+#.*$")  # "evil.example  # note"; a URL's "#frag" stays


def _read_txt(path: Path, ctx: _Context) -> Iterator[Indicator | FeedError]:
    if ctx.type_ is None:
        raise ctx.error(
            "a plain-text feed needs --type (phone, phone_prefix, domain, url, keyword)"
        )
    for item in _lines(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, text = item
        value = _INLINE_COMMENT.sub("", text).strip()
        if not value or value.startswith("#"):
            continue
        yield ctx.record({"value": value}, line=number)


def _read_jsonl(path: Path, ctx: _Context) -> Iterator[Indicator | FeedError]:
    for item in _lines(path, ctx):
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


def _read_csv(path: Path, ctx: _Context) -> Iterator[Indicator | FeedError]:
    handle = _open_text(path, ctx)
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                return
            columns = [name.strip().lower() for name in header]
            if "value" not in columns:
                raise ctx.error(
                    f"the header row has no 'value' column (got {', '.join(columns)}); "
                    f"columns are indicator.v1 field names: {', '.join(RECORD_FIELDS)}",
                    line=1,
                )
            if "type" not in columns and ctx.type_ is None:
                raise ctx.error("no 'type' column and no --type given", line=1)
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(columns):
                    yield ctx.error(
                        f"{len(row)} cells for {len(columns)} columns (a comma in a value "
                        "needs quotes)",
                        line=line,
                    )
                    continue
                rec = dict(zip(columns, row, strict=False))  # an unnamed column is ignored
                yield ctx.record(rec, line=line)
        except UnicodeDecodeError as exc:
            # csv reads ahead in blocks, so the rest of the file cannot be trusted either
            yield ctx.error(f"not UTF-8 ({exc.reason}); reading stopped", line=reader.line_num)
        except csv.Error as exc:
            yield ctx.error(f"CSV: {exc}; reading stopped", line=reader.line_num)


def _load_json(path: Path, ctx: _Context) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ctx.error(f"cannot read: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ctx.error(f"not valid JSON: {exc}") from exc


# --------------------------------------------------------------------------- STIX 2.1


@dataclass(frozen=True, slots=True)
class _Comparison:
    object_type: str
    path: tuple[str, ...]
    operator: str
    values: tuple[str | None, ...]


class _ComparisonCollector(STIXPatternListener):  # type: ignore[misc]
    """Collects every comparison of a STIX pattern, and the operators that join them."""

    def __init__(self) -> None:
        self.comparisons: list[_Comparison] = []
        self.joined_by_and = False  # AND inside [...] or between observations
        self.other_constructs: set[str] = set()  # FOLLOWEDBY, qualifiers
        self._object_type = ""
        self._path: list[str] = []

    def exitObjectType(self, ctx: Any) -> None:
        self._object_type = ctx.getText()

    def exitFirstPathComponent(self, ctx: Any) -> None:
        literal = ctx.StringLiteral()
        self._path = [_stix_string(literal) if literal else ctx.getText()]

    def exitKeyPathStep(self, ctx: Any) -> None:
        literal = ctx.StringLiteral()
        self._path.append(
            _stix_string(literal) if literal else ctx.IdentifierWithoutHyphen().getText()
        )

    def exitIndexPathStep(self, ctx: Any) -> None:
        self._path.append("[*]" if ctx.ASTERISK() else f"[{ctx.IntPosLiteral().getText()}]")

    def exitComparisonExpressionAnd(self, ctx: Any) -> None:
        if ctx.AND():
            self.joined_by_and = True

    def exitObservationExpressionAnd(self, ctx: Any) -> None:
        if ctx.AND():
            self.joined_by_and = True

    def exitObservationExpressions(self, ctx: Any) -> None:
        if ctx.FOLLOWEDBY():
            self.other_constructs.add("FOLLOWEDBY")

    def exitStartStopQualifier(self, ctx: Any) -> None:
        self.other_constructs.add("START/STOP")

    def exitWithinQualifier(self, ctx: Any) -> None:
        self.other_constructs.add("WITHIN")

    def exitRepeatedQualifier(self, ctx: Any) -> None:
        self.other_constructs.add("REPEATS")

    def _add(self, ctx: Any, operator: str, literals: list[Any]) -> None:
        if ctx.NOT():
            operator = f"NOT {operator}"
        self.comparisons.append(
            _Comparison(
                object_type=self._object_type,
                path=tuple(self._path),
                operator=operator,
                values=tuple(_stix_literal(lit) for lit in literals),
            )
        )

    def exitPropTestEqual(self, ctx: Any) -> None:
        operator = "=" if ctx.EQ() else "!="
        self._add(ctx, operator, [ctx.primitiveLiteral()])

    def exitPropTestSet(self, ctx: Any) -> None:
        self._add(ctx, "IN", list(ctx.setLiteral().primitiveLiteral()))

    def exitPropTestOrder(self, ctx: Any) -> None:
        self._add(ctx, "ORDER", [])

    def exitPropTestLike(self, ctx: Any) -> None:
        self._add(ctx, "LIKE", [])

    def exitPropTestRegex(self, ctx: Any) -> None:
        self._add(ctx, "MATCHES", [])

    def exitPropTestIsSubset(self, ctx: Any) -> None:
        self._add(ctx, "ISSUBSET", [])

    def exitPropTestIsSuperset(self, ctx: Any) -> None:
        self._add(ctx, "ISSUPERSET", [])

    def exitPropTestExists(self, ctx: Any) -> None:
        self._add(ctx, "EXISTS", [])


_STIX_ESCAPE = re.compile(r"\\(['\\])")


def _stix_string(token: Any) -> str:
    """The text of a StringLiteral token the parser recognized (quotes and escapes removed)."""
    text: str = token.getText()
    return _STIX_ESCAPE.sub(r"\1", text[1:-1])


def _stix_literal(literal: Any) -> str | None:
    """A primitiveLiteral parse node → its string value; None for a non-string literal."""
    orderable = literal.orderableLiteral()
    string = orderable.StringLiteral() if orderable is not None else None
    return _stix_string(string) if string is not None else None


def stix_pattern_values(pattern: str) -> list[tuple[IndicatorType, str]]:
    """The (type, raw value) pairs a STIX pattern asserts, or FeedError saying why not.

    Accepted: equality (or IN) comparisons of ``domain-name:value`` / ``url:value``, joined
    by OR, in one or several observations joined by OR. Anything else (AND, qualifiers,
    LIKE/MATCHES, other observables) cannot be reduced to indicators and is refused."""
    try:
        parsed = Pattern(pattern)
    except ParseException as exc:
        raise FeedError(f"pattern: not a valid STIX 2.1 pattern ({exc})") from None
    collector = _ComparisonCollector()
    parsed.walk(collector)
    if collector.joined_by_and:
        raise FeedError("pattern: comparisons joined by AND cannot be matched one by one")
    if collector.other_constructs:
        kinds = ", ".join(sorted(collector.other_constructs))
        raise FeedError(f"pattern: unsupported construct {kinds}")
    out: list[tuple[IndicatorType, str]] = []
    for comparison in collector.comparisons:
        observable = f"{comparison.object_type}:{'.'.join(comparison.path)}"
        type_ = _STIX_OBSERVABLES.get((comparison.object_type, comparison.path))
        if type_ is None:
            raise FeedError(f"pattern: unsupported STIX observable {observable}")
        if comparison.operator not in ("=", "IN"):
            raise FeedError(f"pattern: unsupported operator {comparison.operator} on {observable}")
        for value in comparison.values:
            if value is None:
                raise FeedError(f"pattern: {observable} is compared with a non-string")
            out.append((type_, value))
    if not out:
        raise FeedError("pattern: no comparison")
    return out


def _read_stix(path: Path, ctx: _Context) -> Iterator[Indicator | FeedError]:
    bundle = _load_json(path, ctx)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise ctx.error('not a STIX 2.1 bundle (no top-level "type": "bundle")')
    objects = bundle.get("objects")
    if not isinstance(objects, list):
        raise ctx.error("STIX bundle without an 'objects' list")
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            yield ctx.error(f"objects[{index}]: expected an object", object_id=f"objects[{index}]")
            continue
        if obj.get("type") != "indicator":
            continue  # identities, relationships, malware...: context, not indicators
        object_id = str(obj.get("id") or f"objects[{index}]")
        yield from _stix_indicator(obj, object_id, ctx)


def _stix_indicator(
    obj: Mapping[str, Any], object_id: str, ctx: _Context
) -> Iterator[Indicator | FeedError]:
    if obj.get("revoked") is True:
        yield ctx.error("revoked indicator, not loaded", object_id=object_id)
        return
    pattern_type = obj.get("pattern_type", "stix")
    if pattern_type != "stix":
        yield ctx.error(f"pattern_type: {pattern_type!r} is not supported", object_id=object_id)
        return
    pattern = obj.get("pattern")
    if not isinstance(pattern, str):
        yield ctx.error("pattern: missing", object_id=object_id)
        return
    try:
        pairs = stix_pattern_values(pattern)
    except FeedError as exc:
        yield ctx.error(exc.reason, object_id=object_id)
        return
    description = obj.get("description") or obj.get("name")
    reference = ""
    references = obj.get("external_references")
    if isinstance(references, list):
        urls = [r.get("url") for r in references if isinstance(r, dict) and r.get("url")]
        reference = str(urls[0]) if urls else ""
    for type_, value in pairs:
        yield ctx.record(
            {
                "type": type_.value,
                "value": value,
                "confidence": obj.get("confidence"),
                "tags": obj.get("labels"),
                "valid_from": obj.get("valid_from"),
                "valid_until": obj.get("valid_until"),
                "description": description,
                "reference": reference,
            },
            object_id=object_id,
        )


# --------------------------------------------------------------------------- MISP


def _misp_events(document: Any) -> list[Any] | None:
    """The events of a MISP export: ``{"Event": ...}``, a list of those, or ``{"response":
    [...]}`` (the REST search answer); None when it is none of these."""
    if isinstance(document, dict):
        if isinstance(document.get("Event"), dict):
            return [document["Event"]]
        if isinstance(document.get("response"), list):
            document = document["response"]
        else:
            return None
    if isinstance(document, list) and document:
        events = [item.get("Event") for item in document if isinstance(item, dict)]
        if events and all(isinstance(e, dict) for e in events):
            return events
    return None


def _read_misp(path: Path, ctx: _Context) -> Iterator[Indicator | FeedError]:
    events = _misp_events(_load_json(path, ctx))
    if events is None:
        raise ctx.error('not a MISP event (no top-level "Event")')
    for event in events:
        severity = _MISP_THREAT_LEVELS.get(str(event.get("threat_level_id", "")), Severity.HIGH)
        event_tags = _misp_tags(event)
        attributes: list[Any] = list(event.get("Attribute") or [])
        for obj in event.get("Object") or []:
            if isinstance(obj, dict):
                attributes.extend(obj.get("Attribute") or [])
        for index, attribute in enumerate(attributes):
            if not isinstance(attribute, dict):
                yield ctx.error("attribute: expected an object", object_id=f"attribute[{index}]")
                continue
            yield from _misp_attribute(attribute, index, severity, event_tags, ctx)


def _misp_attribute(
    attribute: Mapping[str, Any],
    index: int,
    severity: Severity,
    event_tags: tuple[str, ...],
    ctx: _Context,
) -> Iterator[Indicator | FeedError]:
    object_id = f"attribute {attribute.get('uuid') or attribute.get('id') or f'[{index}]'}"
    misp_type = attribute.get("type")
    type_ = _MISP_TYPES.get(str(misp_type))
    to_ids = attribute.get("to_ids", True) in (True, "1", 1, "true")
    if type_ is None:
        if to_ids:  # meant for detection and we cannot use it: say so
            yield ctx.error(
                f"type: unsupported MISP attribute type {misp_type!r}", object_id=object_id
            )
        return  # context attributes (port, text, ...) of objects are not indicators
    if not to_ids:
        yield ctx.error("to_ids is false: MISP marks it as not for detection", object_id=object_id)
        return
    if attribute.get("deleted") in (True, "1", 1):
        yield ctx.error("deleted attribute, not loaded", object_id=object_id)
        return
    yield ctx.record(
        {
            "type": type_.value,
            "value": attribute.get("value"),
            "severity": severity.value,
            "tags": sorted(set(event_tags) | set(_misp_tags(attribute))),
            "description": attribute.get("comment"),
        },
        object_id=object_id,
    )


def _misp_tags(holder: Mapping[str, Any]) -> tuple[str, ...]:
    tags = holder.get("Tag") or []
    if not isinstance(tags, list):
        return ()
    return tuple(str(t["name"]) for t in tags if isinstance(t, dict) and t.get("name"))
