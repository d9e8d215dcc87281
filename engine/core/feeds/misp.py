"""MISP events: the attributes marked for detection (``to_ids``) of the types we match, in
the event and inside its objects (``Object[].Attribute[]``). Attributes of other types
(``AS``, ``md5``, ``ip-dst``...), not for detection or deleted are skipped, not invalid."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.core.feeds.records import FeedContext, FeedItem, load_json
from engine.core.models import IndicatorType, Severity

# MISP attribute types that become indicators
_MISP_TYPES = {
    "phone-number": IndicatorType.PHONE,
    "domain": IndicatorType.DOMAIN,
    "hostname": IndicatorType.DOMAIN,
    "url": IndicatorType.URL,
    # composite "a|b" types: the first part is the domain (domain|ip: "evil.example|192.0.2.1")
    "domain|ip": IndicatorType.DOMAIN,
    "hostname|port": IndicatorType.DOMAIN,
}
# MISP threat_level_id (1 high .. 3 low, 4 undefined) → severity
_MISP_THREAT_LEVELS = {"1": Severity.HIGH, "2": Severity.MEDIUM, "3": Severity.LOW}


def misp_events(document: Any) -> list[dict[str, Any]] | None:
    """The events of a MISP export, in each form MISP and PyMISP write them: ``{"Event":
    ...}``, a bare event (``{"info": ..., "Attribute": [...]}``, as PyMISP's ``to_json``
    writes it), a list of either, or ``{"response": [...]}`` (the REST search answer); None
    when it is none of these."""
    if isinstance(document, dict):
        if isinstance(document.get("response"), list):
            document = document["response"]
        else:
            event = _event(document)
            return [event] if event is not None else None
    if isinstance(document, list) and document:
        events = [_event(item) for item in document]
        if all(event is not None for event in events):
            return [event for event in events if event is not None]
    return None


def _event(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    wrapped = item.get("Event")
    if isinstance(wrapped, dict):
        return wrapped
    if item.get("type") == "bundle":  # a STIX bundle, never a MISP event
        return None
    has_parts = isinstance(item.get("Attribute"), list) or isinstance(item.get("Object"), list)
    return item if has_parts and ("info" in item or "uuid" in item) else None


def read_misp(path: Path, ctx: FeedContext) -> Iterator[FeedItem]:
    events = misp_events(load_json(path, ctx))
    if events is None:
        raise ctx.error(
            'not a MISP event (no "Event", no event with "info" and "Attribute"/"Object")'
        )
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
            yield _misp_attribute(attribute, index, severity, event_tags, ctx)


def _misp_attribute(
    attribute: Mapping[str, Any],
    index: int,
    severity: Severity,
    event_tags: tuple[str, ...],
    ctx: FeedContext,
) -> FeedItem:
    object_id = f"attribute {attribute.get('uuid') or attribute.get('id') or f'[{index}]'}"
    misp_type = attribute.get("type")
    type_ = _MISP_TYPES.get(str(misp_type))
    if type_ is None:  # AS, md5, ip-dst, port, comment...: valid MISP, nothing we match
        return ctx.skip(f"MISP attribute type {misp_type!r} not matched", object_id=object_id)
    if attribute.get("to_ids", True) not in (True, "1", 1, "true"):
        return ctx.skip("to_ids is false: MISP marks it as not for detection", object_id=object_id)
    if attribute.get("deleted") in (True, "1", 1):
        return ctx.skip("deleted attribute, not loaded", object_id=object_id)
    value = attribute.get("value")
    if "|" in str(misp_type) and isinstance(value, str):
        value = value.split("|", 1)[0]
    return ctx.record(
        {
            "type": type_.value,
            "value": value,
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
