"""Plain-text feeds: one value per line, all of the type given with ``--type``; ``#`` starts
a comment (a whole line, or after blanks: a URL's ``#fragment`` stays)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from engine.core.feeds.records import FeedContext, numbered_lines
from engine.core.models import Indicator
from engine.errors import FeedError

_INLINE_COMMENT = re.compile(r"\s+#.*$")  # "evil.example  # note"; a URL's "#frag" stays


def read_txt(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    if ctx.type_ is None:
        raise ctx.error(
            "a plain-text feed needs --type (phone, phone_prefix, domain, url, keyword)"
        )
    for item in numbered_lines(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, text = item
        value = _INLINE_COMMENT.sub("", text).strip()
        if not value or value.startswith("#"):
            continue
        yield ctx.record({"value": value}, line=number)
