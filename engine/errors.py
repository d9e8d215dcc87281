"""One root exception; subclasses by layer. ``retriable`` tells a worker to retry or dead-letter."""

from __future__ import annotations


class ScamwatchError(Exception):
    """Root of every error scamwatch raises on purpose."""

    retriable: bool = False


class ConfigError(ScamwatchError):
    """A bad setting: names the setting and why; stops the start."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class NormalizationError(ScamwatchError, ValueError):
    """A value that is not a valid indicator of its type (says which value and why)."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")
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
        where = ":".join(str(p) for p in (file, line) if p is not None)
        if object_id:
            where = f"{where} {object_id}".strip()
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.file = file
        self.line = line
        self.object_id = object_id


class DecodeError(ScamwatchError):
    """An input record that cannot be processed; ``reason`` is the stable dead-letter code."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


class StoreError(ScamwatchError):
    """The indicator store failed."""


class StoreUnavailable(StoreError):
    """The indicator store cannot be reached right now; try again later."""

    retriable = True


class StackError(ScamwatchError):
    """The local Kafka/Redis stack could not be set up, started or stopped."""
