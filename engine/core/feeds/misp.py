"""MISP events: the attributes marked for detection (``to_ids``) of the types we match."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.core.feeds.records import FeedContext, load_json
from engine.core.models import Indicator, IndicatorType, Severity
from engine.errors import FeedError

# MISP attribute types that become indicators
_MISP_TYPES = {
    "phone-number": IndicatorType.PHONE,
    "domain": IndicatorType.DOMAIN,
    "hostname": IndicatorType.DOMAIN,
    "url": IndicatorType.URL,
}
# MISP threat_level_id (1 high .. 3 low, 4 undefined) → severity
_MISP_THREAT_LEVELS = {"1": Severity.HIGH, "2": Severity.MEDIUM, "3": Severity.LOW}


def misp_events(document: Any) -> list[Any] | None:
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


def read_misp(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    events = misp_events(load_json(path, ctx))
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
    ctx: FeedContext,
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
