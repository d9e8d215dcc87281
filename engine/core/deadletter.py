"""deadletter.v1 records: every input a worker could not process, with why and where from."""

from __future__ import annotations

import base64
import traceback

from engine.core.models import SourcePosition, Stream
from engine.core.records import DeadLetter
from engine.core.timestamps import format_rfc3339

# reasons beyond the decode ones of engine.core.events (invalid_json, invalid_utf8,
# schema_violation, too_large)
PROCESSING_ERROR = "processing_error"


def build_deadletter(
    stream: Stream,
    raw: bytes | None,
    *,
    reason: str,
    error: str,
    source: SourcePosition,
    emitted_ms: int,
    max_raw_bytes: int | None = None,
) -> DeadLetter:
    """One deadletter.v1 record. ``raw`` is kept as text when it is UTF-8, else base64.

    With ``max_raw_bytes``, a longer ``raw`` keeps only its first bytes and the record says
    so (``raw_truncated``, ``raw_size``): a dead-letter must fit in a Kafka record. Text or
    base64 is decided on the whole ``raw``; kept text is cut on a character boundary (at
    most ``max_raw_bytes`` bytes of UTF-8), base64 holds the first ``max_raw_bytes`` bytes.
    """
    data = raw if raw is not None else b""
    # text or base64 is decided on the whole record, before any cut: a cut may split a
    # character, and valid text must not turn into base64 for that
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        is_text = False
    else:
        is_text = True
    truncated = max_raw_bytes is not None and len(data) > max_raw_bytes
    size = len(data)
    if max_raw_bytes is not None and truncated:
        cut = max(max_raw_bytes, 0)
        if is_text:
            # back off to a character boundary: never cut before a continuation byte
            while cut > 0 and data[cut] & 0xC0 == 0x80:
                cut -= 1
        data = data[:cut]
    return DeadLetter(
        reason=reason,
        error=error,
        stream=stream,
        source=source,
        raw=data.decode("utf-8") if is_text else base64.b64encode(data).decode("ascii"),
        ts=format_rfc3339(emitted_ms),
        raw_encoding=None if is_text else "base64",
        raw_truncated=truncated,
        raw_size=size if truncated else None,
    )


def describe_exception(exc: BaseException, *, limit: int = 3) -> str:
    """A one-line summary of an unexpected exception and where it was raised (last frames)."""
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    where = " <- ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames[::-1]
    )
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} (at {where})" if where else text
