"""Line-based feeds: plain text (one value per line, all of the type given with ``--type``),
URL lists (one URL per line, as OpenPhish publishes them) and hosts files (``0.0.0.0
domain``, as DNS blocklists publish them).

``#`` starts a comment (a whole line, or after blanks: a URL's ``#fragment`` stays); blank
lines are skipped; CRLF line ends and a byte-order mark are read as if absent."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

from engine.core.feeds.records import FeedContext, numbered_lines
from engine.core.models import Indicator, IndicatorType
from engine.errors import FeedError

_INLINE_COMMENT = re.compile(r"\s+#.*$")  # "evil.example  # note"; a URL's "#frag" stays
# names a hosts file maps for the machine itself, never blocklist entries
HOSTS_LOCAL_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)


def _values(path: Path, ctx: FeedContext) -> Iterator[tuple[int, str] | FeedError]:
    """Each line's value, comments and blank lines left out."""
    for item in numbered_lines(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, text = item
        value = _INLINE_COMMENT.sub("", text).strip()
        if value and not value.startswith("#"):
            yield number, value


def read_txt(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    if ctx.type_ is None:
        raise ctx.error(
            "a plain-text feed needs --type (phone, phone_prefix, domain, url, keyword)"
        )
    for item in _values(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, value = item
        yield ctx.record({"value": value}, line=number)


def read_urls(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    """One URL per line (OpenPhish, most phishing lists): every value is a ``url``."""
    for item in _values(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, value = item
        yield ctx.record({"type": IndicatorType.URL.value, "value": value}, line=number)


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])  # fe80::1%lo0: a zone id
    except ValueError:
        return False
    return True


def read_hosts(path: Path, ctx: FeedContext) -> Iterator[Indicator | FeedError]:
    """A hosts file: ``ADDRESS NAME [NAME...]`` lines, each NAME a ``domain``. The address
    (``0.0.0.0``, ``127.0.0.1``, ``::1``, any) only says where the list sends the name;
    ``localhost`` and the other names of the machine itself are left out. A line of one bare
    name (lists that mix both styles) is that domain."""
    for item in _values(path, ctx):
        if isinstance(item, FeedError):
            yield item
            continue
        number, value = item
        tokens = value.split()
        names = tokens[1:] if is_ip_address(tokens[0]) else tokens
        if not names:
            yield ctx.error(f"an address without a name: {value!r}", line=number)
            continue
        if len(names) > 1 and not is_ip_address(tokens[0]):
            yield ctx.error(f"expected 'ADDRESS NAME', got {value!r}", line=number)
            continue
        for name in names:
            if name.lower() not in HOSTS_LOCAL_NAMES:
                yield ctx.record({"type": IndicatorType.DOMAIN.value, "value": name}, line=number)
