"""Every error scamwatch raises on purpose: one root, subclasses by layer.

Each carries where it came from (``source``: a Kafka position, a feed ``file:line`` or object
id, a setting's name) and prints it first, as pySigma's ``SigmaRuleLocation`` does.
``retriable`` tells the worker and the indicator follower to retry (Redis or Kafka down)
or give up (bad record: dead-letter; bad setting: stop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class KafkaPosition(Protocol):
    """A record's place in Kafka (``engine.core.models.SourcePosition``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FeedLocation:
    """Where in an indicator feed: ``file:line``, and the STIX/MISP object id when there is one."""

    file: str | None = None
    line: int | None = None
    object_id: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        return f"{where} {self.object_id}".strip() if self.object_id else where


Source = KafkaPosition | FeedLocation | str


def describe_source(source: Source | None) -> str:
    """``source`` as printed before an error's message ("" when there is none)."""
    if source is None or isinstance(source, str | FeedLocation):
        return str(source or "")
    return f"{source.topic}[{source.partition}]@{source.offset}"


class ScamwatchError(Exception):
    """Root of every error scamwatch raises on purpose; prints ``source: message``."""

    retriable: bool = False

    def __init__(self, message: str = "", *, source: Source | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        where = describe_source(self.source)
        return f"{where}: {self.message}" if where else self.message


class ConfigError(ScamwatchError):
    """A bad setting: names the setting (its ``source``) and why; stops the start."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(reason, source=setting)
        self.setting = setting
        self.reason = reason


class NormalizationError(ScamwatchError, ValueError):
    """A value that is not a valid indicator of its type (says which value and why)."""

    def __init__(self, kind: str, value: str, reason: str, *, source: Source | None = None) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}", source=source)
        self.kind = kind
        self.value = value
        self.reason = reason


class FeedError(ScamwatchError):
    """A bad line or object in an indicator feed, with where it came from."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        object_id: str | None = None,
    ) -> None:
        location = FeedLocation(file, line, object_id)
        super().__init__(reason, source=location if str(location) else None)
        self.reason = reason
        self.file = file
        self.line = line
        self.object_id = object_id


class DecodeError(ScamwatchError):
    """An input record that cannot be processed; ``reason`` is the stable dead-letter code.
    Not retriable: the record goes to the dead-letter topic."""

    def __init__(self, reason: str, error: str, *, source: Source | None = None) -> None:
        super().__init__(f"{reason}: {error}", source=source)
        self.reason = reason
        self.error = error


class SchemaViolation(ScamwatchError):
    """A document that breaks its schema; ``path`` names the field (``matches[0].rule``)."""

    def __init__(
        self, schema: str, path: str, reason: str, *, source: Source | None = None
    ) -> None:
        super().__init__(f"{schema}: {path}: {reason}", source=source)
        self.schema = schema
        self.path = path
        self.reason = reason


class UnknownSchema(ScamwatchError):
    """A schema name that is not one of the known record schemas."""


class StoreError(ScamwatchError):
    """The indicator store failed."""


class StoreUnavailable(StoreError):
    """The indicator store cannot be reached right now; try again later."""

    retriable = True


class TransportError(ScamwatchError):
    """Kafka could not be reached or refused a record (retriable: the broker may come back)."""

    retriable = True


class FeedServerError(ScamwatchError):
    """A feed server (TAXII) refused the request: bad credentials, unknown collection."""


class FeedServerUnavailable(FeedServerError):
    """A feed server cannot be reached right now; try again later."""

    retriable = True


class StackError(ScamwatchError):
    """The local Kafka/Redis stack could not be set up, started or stopped."""


class DemoError(ScamwatchError):
    """The demo could not run (stack down, worker did not come up, ...)."""
