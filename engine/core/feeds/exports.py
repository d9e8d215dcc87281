"""CSV exports of public lists, read as their publishers write them.

- **URLhaus** (abuse.ch ``csv``/``csv_recent`` dumps): ``#`` comment lines, the header as a
  comment (``# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter``),
  then quoted rows. Each row is a ``url``; ``threat`` and ``tags`` (comma-separated inside
  one cell) become tags, ``urlhaus_link`` the reference.
- **PhishTank** (``online-valid.csv``): header ``phish_id,url,phish_detail_url,
  submission_time,verified,verification_time,online,target``. Each row is a ``url`` tagged
  ``phishing`` and its target brand; a verified phish has confidence 90.
- **FTC Do-Not-Call complaints** (the FTC's reported-calls CSV): each row is one complaint
  about ``Company_Phone_Number``, read as a US number. The same number reported many times
  is one ``phone`` indicator whose confidence grows with its reports
  (:func:`confidence_from_reports`), tagged with every complaint ``Subject``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.feeds.records import FeedContext, csv_rows, header_columns, too_many_cells
from engine.core.models import Indicator, IndicatorType
from engine.core.normalize import normalize_phone
from engine.errors import FeedError, NormalizationError

URLHAUS_COLUMNS = (
    "id",
    "dateadded",
    "url",
    "url_status",
    "last_online",
    "threat",
    "tags",
    "urlhaus_link",
    "reporter",
)
PHISHTANK_COLUMNS = ("phish_id", "url", "phish_detail_url", "submission_time", "verified")
FTC_PHONE_COLUMN = "company_phone_number"
FTC_SUBJECT_COLUMN = "subject"
_FTC_NO_SUBJECT = {"", "no subject provided"}  # the FTC's own wording for "not said"
FTC_REGION = "US"  # the FTC's complaints are about calls to US consumers, numbers as dialled


def confidence_from_reports(reports: int) -> int:
    """40 for one complaint, 15 more each time the reports double, at most 95: one report
    is a hint, a number reported by dozens of people is all but certain."""
    return min(95, 40 + round(15 * math.log2(max(reports, 1))))


def _rows_with_header(
    path: Path,
    ctx: FeedContext,
    *,
    required: str,
    publisher: str,
    default: tuple[str, ...] | None = None,
) -> Iterator[tuple[int, dict[str, str]] | FeedError]:
    """Rows as dicts by lower-cased column name. The header is the first row, or, when a
    comment line is one (URLhaus writes ``# id,dateadded,...``), that comment; ``default``
    is the publisher's documented column order when neither names the columns. A header
    without the ``required`` column refuses the file."""
    commented: list[list[str]] = []

    def on_comment(text: str) -> None:
        columns = header_columns(text.lstrip("#").split(","))
        if default is not None and len(columns) >= 3 and columns[:3] == list(default[:3]):
            commented.append(columns)

    columns: list[str] | None = None
    for item in csv_rows(path, ctx, on_comment=on_comment):
        if isinstance(item, FeedError):
            yield item
            continue
        line, row = item
        if columns is None:
            first = header_columns(row)
            is_header = required in first
            columns = first if is_header else commented[-1] if commented else list(default or ())
            if required not in columns:
                raise ctx.error(
                    f"{publisher} export without a {required!r} column (got {', '.join(first)})",
                    line=line,
                )
            if is_header:
                continue
        if (wide := too_many_cells(row, columns, ctx, line)) is not None:
            yield wide
            continue
        yield line, dict(zip(columns, row, strict=False))


def _tags(*cells: str) -> list[str]:
    return [tag.strip() for cell in cells for tag in cell.split(",") if tag.strip()]


def read_urlhaus(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    rows = _rows_with_header(
        path, ctx, required="url", publisher="URLhaus", default=URLHAUS_COLUMNS
    )
    for item in rows:
        if isinstance(item, FeedError):
            yield item
            continue
        line, row = item
        status = row.get("url_status", "").strip()
        yield ctx.record(
            {
                "type": IndicatorType.URL.value,
                "value": row.get("url"),
                "tags": _tags(row.get("threat", ""), row.get("tags", "")),
                "reference": row.get("urlhaus_link"),
                "description": f"URLhaus {row.get('id', '').strip()}"
                + (f" ({status})" if status else ""),
            },
            line=line,
        )


def read_phishtank(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    for item in _rows_with_header(path, ctx, required="url", publisher="PhishTank"):
        if isinstance(item, FeedError):
            yield item
            continue
        line, row = item
        target = row.get("target", "").strip()
        verified = row.get("verified", "").strip().lower() in ("yes", "true", "1")
        yield ctx.record(
            {
                "type": IndicatorType.URL.value,
                "value": row.get("url"),
                "tags": ["phishing", *([target] if target and target != "Other" else [])],
                "confidence": 90 if verified else None,
                "reference": row.get("phish_detail_url"),
                "description": f"PhishTank phish {row.get('phish_id', '').strip()}",
            },
            line=line,
        )


@dataclass(slots=True)
class _Reports:
    first_line: int
    count: int = 0
    subjects: set[str] = field(default_factory=set)


def read_ftc_dnc(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    """One indicator per reported number (in the order first reported), after the whole file
    is read: its confidence depends on how many complaints name it. Bad rows come first."""
    reports: dict[str, _Reports] = {}
    rows = _rows_with_header(path, ctx, required=FTC_PHONE_COLUMN, publisher="FTC Do-Not-Call")
    for item in rows:
        if isinstance(item, FeedError):
            yield item
            continue
        line, row = item
        raw = row.get(FTC_PHONE_COLUMN, "").strip()
        if not raw:
            yield ctx.error("Company_Phone_Number: empty", line=line)
            continue
        try:
            number = normalize_phone(raw, FTC_REGION)
        except NormalizationError as exc:
            yield ctx.error(f"Company_Phone_Number: {exc}", line=line)
            continue
        entry = reports.get(number)
        if entry is None:
            entry = reports[number] = _Reports(first_line=line)
        entry.count += 1
        subject = row.get(FTC_SUBJECT_COLUMN, "").strip()
        if subject.lower() not in _FTC_NO_SUBJECT:
            entry.subjects.add(subject)
    for number, entry in reports.items():
        yield ctx.record(
            {
                "type": IndicatorType.PHONE.value,
                "value": number,
                "confidence": confidence_from_reports(entry.count),
                "tags": ["ftc-dnc", *sorted(entry.subjects)],
                "description": f"{entry.count} FTC Do-Not-Call complaint"
                + ("s" if entry.count != 1 else ""),
            },
            line=entry.first_line,
        )
