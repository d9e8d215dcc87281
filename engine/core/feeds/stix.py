"""STIX 2.1 bundles: each ``indicator`` object whose pattern reduces to domain or URL values.

Patterns are read by the ``stix2-patterns`` ANTLR parser, never by slicing; what cannot be
matched value by value (AND, qualifiers, LIKE/MATCHES) is refused; an indicator of only
other observables (``file:hashes``, ``ipv4-addr``) or another pattern language is skipped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stix2patterns.exceptions import ParseException
from stix2patterns.v21.grammars.STIXPatternListener import STIXPatternListener
from stix2patterns.v21.pattern import Pattern

from engine.core.feeds.records import FeedContext, FeedItem, load_json
from engine.core.models import IndicatorType
from engine.errors import FeedError

# STIX observable paths that become indicators (object type, property path)
_STIX_OBSERVABLES: dict[tuple[str, tuple[str, ...]], IndicatorType] = {
    ("domain-name", ("value",)): IndicatorType.DOMAIN,
    ("url", ("value",)): IndicatorType.URL,
}


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


@dataclass(frozen=True, slots=True)
class StixPatternValues:
    """What a STIX pattern asserts: the (type, raw value) pairs scamwatch matches, and the
    observables it compares that scamwatch does not match (``file:hashes.MD5``)."""

    values: tuple[tuple[IndicatorType, str], ...]
    unsupported: tuple[str, ...] = ()


def stix_pattern_values(pattern: str) -> StixPatternValues:
    """The (type, raw value) pairs a STIX pattern asserts, or FeedError saying why not.

    Accepted: equality (or IN) comparisons of ``domain-name:value`` / ``url:value``, joined
    by OR, in one or several observations joined by OR; comparisons of other observables
    (``file:hashes``, ``ipv4-addr``) are listed as unsupported, not refused: a pattern of
    only those is a valid indicator scamwatch has no use for. Where a domain or URL is
    compared, what cannot be matched value by value (AND, qualifiers, LIKE/MATCHES) is
    refused."""
    try:
        parsed = Pattern(pattern)
    except ParseException as exc:
        raise FeedError(f"pattern: not a valid STIX 2.1 pattern ({exc})") from None
    collector = _ComparisonCollector()
    parsed.walk(collector)
    supported: list[tuple[IndicatorType, _Comparison]] = []
    unsupported: list[str] = []
    for comparison in collector.comparisons:
        observable = f"{comparison.object_type}:{'.'.join(comparison.path)}"
        type_ = _STIX_OBSERVABLES.get((comparison.object_type, comparison.path))
        if type_ is None:
            if observable not in unsupported:
                unsupported.append(observable)
        else:
            supported.append((type_, comparison))
    if not supported and unsupported:
        return StixPatternValues((), tuple(unsupported))
    if collector.joined_by_and:
        raise FeedError("pattern: comparisons joined by AND cannot be matched one by one")
    if collector.other_constructs:
        kinds = ", ".join(sorted(collector.other_constructs))
        raise FeedError(f"pattern: unsupported construct {kinds}")
    out: list[tuple[IndicatorType, str]] = []
    for type_, comparison in supported:
        observable = f"{comparison.object_type}:{'.'.join(comparison.path)}"
        if comparison.operator not in ("=", "IN"):
            raise FeedError(f"pattern: unsupported operator {comparison.operator} on {observable}")
        for value in comparison.values:
            if value is None:
                raise FeedError(f"pattern: {observable} is compared with a non-string")
            out.append((type_, value))
    if not out:
        raise FeedError("pattern: no comparison")
    return StixPatternValues(tuple(out), tuple(unsupported))


def read_stix(path: Path, ctx: FeedContext) -> Iterator[FeedItem]:
    bundle = load_json(path, ctx)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise ctx.error('not a STIX 2.1 bundle (no top-level "type": "bundle")')
    objects = bundle.get("objects")
    if not isinstance(objects, list):
        raise ctx.error("STIX bundle without an 'objects' list")
    yield from stix_objects(objects, ctx)


def stix_objects(objects: Iterable[object], ctx: FeedContext) -> Iterator[FeedItem]:
    """The indicators of a stream of STIX objects (a bundle's, or a TAXII collection's pages);
    other object types are context and left out."""
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            yield ctx.error(f"objects[{index}]: expected an object", object_id=f"objects[{index}]")
            continue
        if obj.get("type") != "indicator":
            continue  # identities, relationships, malware...: context, not indicators
        object_id = str(obj.get("id") or f"objects[{index}]")
        yield from _stix_indicator(obj, object_id, ctx)


def _stix_indicator(obj: Mapping[str, Any], object_id: str, ctx: FeedContext) -> Iterator[FeedItem]:
    if obj.get("revoked") is True:
        yield ctx.skip("revoked indicator, not loaded", object_id=object_id)
        return
    pattern_type = obj.get("pattern_type", "stix")
    if pattern_type != "stix":
        yield ctx.skip(f"pattern_type {pattern_type!r}: not a STIX pattern", object_id=object_id)
        return
    pattern = obj.get("pattern")
    if not isinstance(pattern, str):
        yield ctx.error("pattern: missing", object_id=object_id)
        return
    try:
        reading = stix_pattern_values(pattern)
    except FeedError as exc:
        yield ctx.error(exc.reason, object_id=object_id)
        return
    if not reading.values:
        observables = ", ".join(reading.unsupported)
        reason = f"STIX observable not matched by scamwatch: {observables}"
        yield ctx.skip(reason, object_id=object_id)
        return
    description = obj.get("description") or obj.get("name")
    reference = ""
    references = obj.get("external_references")
    if isinstance(references, list):
        urls = [r.get("url") for r in references if isinstance(r, dict) and r.get("url")]
        reference = str(urls[0]) if urls else ""
    for type_, value in reading.values:
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
