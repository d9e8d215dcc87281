"""URLs → scheme-less ``host[:port]`` + path + ``?query``, the host as a domain.

``http``/``https`` (and defanged ``hxxp``/``hxxps``), ``ws``/``wss``, ``ftp`` or no scheme;
scheme-less values are read as http(s). Both 80 and 443 count as default ports for http,
https and scheme-less values (the scheme is dropped anyway, so the two are not told apart).
Backslashes in the path become ``/`` (browsers do the same); tabs and newlines are removed.
Without a scheme, ``user:pass@host`` reads as the scheme ``user:`` and is rejected, as a
browser would (``user@host`` is fine). Defanged forms (``hxxp``, ``hxxps``, ``h**p``,
``[:]//``, ``[://]``, and in the host ``[.]``, ``(.)``, ``{.}``, ``[dot]``, ``[:]``) are
refanged in the scheme and host only: a path is kept. Prefix matching stays sane:
``evil.com/pay`` is a prefix of the normal form of ``https://EVIL.com:443/pay?x=1``
(``evil.com/pay?x=1``), and ``evil.com`` of every URL on that host; the matcher must still
check that a prefix ends at ``/``, ``?``, ``:`` or the end (``evil.com`` is a string prefix of
``evil.com.example.org``).
"""

from __future__ import annotations

import re

from engine.core.normalize.domain import normalize_host, refang
from engine.errors import NormalizationError

# hxxp://, hXXps[:]//, h**p[://], ftp[:]// …: the scheme of a defanged URL
_DEFANGED_SCHEME = re.compile(
    r"\A(?:h(?:xx|\*\*|\[tt\]|tt)p(s?)|([A-Za-z][A-Za-z0-9+.\-]*))(?:\[:\]//|\[://\]|://)",
    re.IGNORECASE,
)


def _refang_scheme(match: re.Match[str]) -> str:
    return f"http{match.group(1)}://" if match.group(2) is None else f"{match.group(2)}://"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_DEFAULT_PORTS: dict[str, frozenset[str]] = {
    "": frozenset({"80", "443"}),
    "http": frozenset({"80", "443"}),
    "https": frozenset({"80", "443"}),
    "ws": frozenset({"80"}),
    "wss": frozenset({"443"}),
    "ftp": frozenset({"21"}),
}
_URL_STRIPPED = str.maketrans("", "", "\t\n\r")
_AUTHORITY_END = re.compile(r"[/?\\]")


# the common shape (http(s) or no scheme, plain host, optional port); anything else (userinfo,
# IPv6, defanged, other schemes, odd characters) takes the general path below
_PLAIN_URL = re.compile(
    r"(?:(https?)://)?([A-Za-z0-9_.-]+)(?::([0-9]{1,5}))?([/?#].*)?", re.IGNORECASE | re.DOTALL
)


def split_url(value: str) -> tuple[str, str]:
    """A URL with or without scheme → (normalized ``host[:port]``, path + ``?query``).

    The second part is ``""`` for a bare host (no path, or only ``/``, and no query).
    """
    plain = _PLAIN_URL.fullmatch(value)
    if plain is not None:
        _, host_text, port, tail = plain.groups()
        if port is not None:
            if int(port) > 65535:
                return _split_url_general(value)  # which says why
            port = str(int(port))
            if port in _DEFAULT_PORTS[""]:
                port = ""
        return _join_url(normalize_host(host_text, value, "url"), port, tail or "")
    return _split_url_general(value)


def _join_url(host: str, port: str | None, tail: str) -> tuple[str, str]:
    host_port = f"{host}:{port}" if port else host
    hash_at = tail.find("#")
    if hash_at >= 0:
        tail = tail[:hash_at]
    query_at = tail.find("?")
    if query_at >= 0:
        path, query = tail[:query_at], tail[query_at + 1 :]
    else:
        path, query = tail, ""
    if "\\" in path:
        path = path.replace("\\", "/")
    if query:
        return host_port, f"{path or '/'}?{query}"
    if path == "/":
        return host_port, ""
    return host_port, path


def _split_url_general(value: str) -> tuple[str, str]:
    text = value.strip()
    if not text:
        raise NormalizationError("url", value, "empty")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_URL_STRIPPED)
    scheme = ""
    # defanged markers are refanged in the scheme and the authority only: a path is kept
    text = _DEFANGED_SCHEME.sub(_refang_scheme, text, count=1)
    match = _SCHEME.match(text)
    if match is not None and not text[match.end() : match.end() + 1].isdigit():
        scheme = match.group(1).lower()
        if scheme not in _DEFAULT_PORTS:
            raise NormalizationError("url", value, f"unsupported scheme {scheme!r}")
        text = text[match.end() :].lstrip("/\\")
    elif text.startswith("//"):
        text = text[2:]
    hash_at = text.find("#")
    if hash_at >= 0:
        text = text[:hash_at]
    end = _AUTHORITY_END.search(text)
    if end is None:
        authority, tail = text, ""
    else:
        authority, tail = text[: end.start()], text[end.start() :]
    at = authority.rfind("@")
    if at >= 0:
        authority = authority[at + 1 :]
    if "[" in authority or "(" in authority or "{" in authority:
        authority = refang(authority)
    if not authority:
        raise NormalizationError("url", value, "no host")
    port = ""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise NormalizationError("url", value, "unclosed '[' in IPv6 address")
        host_text, rest = authority[: close + 1], authority[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise NormalizationError(
                    "url", value, f"unexpected {rest!r} after the IPv6 address"
                )
            port = rest[1:]
    else:
        host_text, colon, port = authority.rpartition(":")
        if not colon:
            host_text, port = authority, ""
    if port:
        if not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise NormalizationError("url", value, f"port {port!r} is not a number from 0 to 65535")
        port = str(int(port))
        if port in _DEFAULT_PORTS[scheme]:
            port = ""
    return _join_url(normalize_host(host_text, value, "url"), port, tail)


def normalize_url(value: str) -> str:
    """A URL → ``host[:port]`` + path + ``?query`` (see the module doc for what is dropped)."""
    host_port, rest = split_url(value)
    return host_port + rest
