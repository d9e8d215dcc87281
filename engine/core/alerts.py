"""alert.v1 records from an event and its verdict (pure: no I/O, no clocks read here)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from engine import __version__
from engine.core.models import (
    IndicatorType,
    Match,
    Rule,
    Severity,
    SourcePosition,
    StatefulRule,
    Stream,
    Verdict,
)
from engine.core.records import Alert, EngineStamp, Hunt, MatchDetail, MatchedIndicator
from engine.core.timestamps import format_rfc3339

# namespace of alert ids: uuid5 over (stream, partner, event, rule, indicator type, value)
ALERT_ID_NAMESPACE = uuid.UUID("5c0a7e1d-2b1f-4c53-9a0e-5ca3a7c4a1e7")
_NAMESPACE_BYTES = ALERT_ID_NAMESPACE.bytes

# the least severity a rule gives, whatever the indicator says (never lowers one)
RULE_MIN_SEVERITY: dict[Rule, Severity] = {Rule.CALLEE_SCAM_NUMBER: Severity.HIGH}


def alert_id(
    stream: Stream,
    partner_id: str,
    event_id: str,
    rule: Rule | StatefulRule,
    type_: IndicatorType,
    value: str,
) -> str:
    """Deterministic: the same event matched by the same indicator under the same rule
    always yields the same id, so consumers can drop duplicates of a reprocessed event."""
    name = "\x1f".join((str(stream), partner_id, event_id, str(rule), str(type_), value))
    # uuid.uuid5(ALERT_ID_NAMESPACE, name), without building a UUID object (hot path):
    # SHA-1 of namespace + name, 16 bytes, version 5, RFC 4122 variant
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def alert_key(partner_id: str, subscriber_id: str | None, fallback: str) -> bytes:
    """Kafka key of an alert: partner + subscriber (else ``fallback``: caller/callee or
    event id), so one subscriber's alerts stay in one partition, in order."""
    return f"{partner_id}:{subscriber_id or fallback}".encode()


def build_alerts(
    stream: Stream,
    event_record: Mapping[str, Any],
    verdict: Verdict,
    *,
    event_ts_ms: int | None,
    source: SourcePosition,
    indicator_version: int,
    emitted_ms: int,
    hunt: Hunt | None = None,
) -> list[Alert]:
    """One alert.v1 per (rule, indicator), holding every match of that pair, in the order
    the matcher found them. ``event_record`` is the input object as received, ``event_ts_ms``
    its ``ts`` as the decoder read it (None when it had none it could read). With ``hunt``,
    a retro-hunt's alerts: ``retro: true`` and the hunt."""
    if not verdict.matches:
        return []
    groups: dict[tuple[Rule, IndicatorType, str], list[Match]] = {}
    for m in verdict.matches:
        groups.setdefault((m.rule, m.indicator.type, m.indicator.value), []).append(m)

    partner_id = str(event_record.get("partner_id", ""))
    event_id = str(event_record.get("event_id", ""))
    subscriber_id = event_record.get("subscriber_id")
    event_ts = None if event_ts_ms is None else format_rfc3339(event_ts_ms)
    emitted = format_rfc3339(emitted_ms)
    engine = EngineStamp(__version__, indicator_version)
    retro = True if hunt is not None else None
    alerts: list[Alert] = []
    for (rule, type_, value), matches in groups.items():
        indicator = matches[0].indicator
        severity = indicator.severity.at_least(RULE_MIN_SEVERITY.get(rule, Severity.LOW))
        alerts.append(
            Alert(
                alert_id=alert_id(stream, partner_id, event_id, rule, type_, value),
                ts=emitted,
                event_ts=event_ts,
                stream=stream,
                rule=str(rule),
                severity=str(severity),
                partner_id=partner_id,
                subscriber_id=subscriber_id if isinstance(subscriber_id, str) else None,
                event_id=event_id,
                matches=tuple(match_detail(m) for m in matches),
                event=event_record,
                source=source,
                engine=engine,
                retro=retro,
                hunt=hunt,
            )
        )
    return alerts


def match_detail(m: Match) -> MatchDetail:
    """The match as an alert carries it."""
    return MatchDetail(m.field, m.observed, m.normalized, MatchedIndicator.of(m.indicator))
