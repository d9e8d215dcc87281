"""Host names and IP addresses → lower-case ASCII (punycode), no trailing dot, no port.

We accept what resolvers and browsers resolve, not only RFC 952 LDH names: ASCII labels of
letters, digits, ``-`` and ``_`` (``_dmarc``, ``my_site.blogspot.com``), hyphens anywhere,
because an event host we cannot read is a missed alert. Labels are 1–63 characters, the name
at most 253. Non-ASCII and ``xn--`` labels go through IDNA 2008 with UTS 46 mapping
(non-transitional, so ``faß.de`` stays distinct from ``fass.de``); a label IDNA 2008 forbids
(emoji, ``ü_x``) is rejected. Defanged dots (``[.]``, ``(.)``, ``{.}``, ``[dot]``) are
refanged. An all-numeric top label is an IPv4 address or an error.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import unquote

import idna

from engine.errors import NormalizationError

MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
# a host written longer than this is refused before any work on it: its normal form has at
# most 253 characters, and 4x leaves room for percent-encoding, defanging and ignored code
# points, while a hostile 100,000-label host costs no per-label work
MAX_HOST_TEXT_LENGTH = 1024
_ASCII_HOST = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}")
_ASCII_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DEFANGS = (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("(dot)", "."))
# hxxp://, hXXps[:]//, h**p[://], ftp[:]// …: the scheme of a defanged URL

_IP_CHARS = frozenset("0123456789.")


def refang(text: str) -> str:
    for old, new in _DEFANGS:
        if old in text:
            text = text.replace(old, new)
    if "[:]" in text:
        text = text.replace("[:]", ":")
    if "[/]" in text:
        text = text.replace("[/]", "/")
    return text


@functools.lru_cache(maxsize=4096)
def _idn_label(label: str) -> tuple[str | None, str]:
    """A non-ASCII or ``xn--`` label → (its canonical A-label, "") or (None, reason)."""
    try:
        if label.startswith("xn--"):
            label = idna.ulabel(label)
        alabel = idna.alabel(label).decode("ascii")
    except idna.IDNAError as exc:
        return None, f"label {label!r} is not a valid internationalized label: {exc}"
    except UnicodeError as exc:
        return None, f"label {label!r} is not valid punycode: {exc}"
    return alabel, ""


def _hostname(host: str, original: str, kind: str) -> str:
    """The slow, precise path: ``host`` has no port and no brackets."""
    if not host.isascii():
        try:
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except idna.IDNAError as exc:
            raise NormalizationError(kind, original, f"not a valid host name: {exc}") from None
    else:
        host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise NormalizationError(kind, original, "empty host")
    labels = host.split(".")
    out: list[str] = []
    for label in labels:
        if not label:
            raise NormalizationError(
                kind, original, "empty label (two dots in a row, or a leading dot)"
            )
        if label.isascii() and not label.startswith("xn--"):
            bad = next((c for c in label if c not in _ASCII_LABEL_CHARS), None)
            if bad is not None:
                raise NormalizationError(
                    kind,
                    original,
                    f"label {label!r} has a character not allowed in a host name ({bad!r})",
                )
            alabel = label
        else:
            converted, reason = _idn_label(label)
            if converted is None:
                raise NormalizationError(kind, original, reason)
            alabel = converted
        if len(alabel) > MAX_LABEL_LENGTH:
            raise NormalizationError(
                kind,
                original,
                f"label {alabel[:20]!r}… is longer than {MAX_LABEL_LENGTH} characters",
            )
        out.append(alabel)
    result = ".".join(out)
    if len(result) > MAX_HOST_LENGTH:
        raise NormalizationError(kind, original, f"longer than {MAX_HOST_LENGTH} characters")
    return _check_numeric(result, original, kind)


def _check_numeric(host: str, original: str, kind: str) -> str:
    """A host whose top label is all digits must be an IPv4 address."""
    top = host.rpartition(".")[2]
    if not top.isdigit():
        return host
    if _IP_CHARS.issuperset(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        raise NormalizationError(kind, original, "not a valid IPv4 address")
    raise NormalizationError(
        kind,
        original,
        f"top-level label {top!r} is all digits (not a host name nor an IPv4 address)",
    )


def _ipv6(text: str, original: str, kind: str) -> str:
    try:
        address = ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        raise NormalizationError(kind, original, "not a valid IPv6 address") from None
    return f"[{address.compressed}]"


HOST_CACHE_SIZE = 65_536


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _plain_host(host: str) -> str | None:
    """The normal form of a plain ASCII host (LDH(+_) labels, no punycode, no all-digit top
    label), else None. Cached: traffic repeats its hosts, and the regex costs a microsecond."""
    if not host.isascii():
        return None
    lowered = host.lower()
    if lowered.endswith("."):
        lowered = lowered[:-1]
    if (
        len(lowered) <= MAX_HOST_LENGTH
        and _ASCII_HOST.fullmatch(lowered) is not None
        and "xn--" not in lowered
        and not lowered[-1].isdigit()
    ):
        return lowered
    return None


def normalize_host(host: str, original: str, kind: str) -> str:
    """A host without port (IPv6 with or without brackets) → its normal form."""
    if len(host) > MAX_HOST_TEXT_LENGTH:
        raise NormalizationError(
            kind,
            original[:40] + "…",
            f"host written in more than {MAX_HOST_TEXT_LENGTH} characters",
        )
    # fast path (a longer value is no plain host: only that length is cached)
    if len(host) <= MAX_HOST_LENGTH + 1:
        plain = _plain_host(host)
        if plain is not None:
            return plain
    if host.startswith("["):
        if not host.endswith("]"):
            raise NormalizationError(kind, original, "unclosed '[' in IPv6 address")
        return _ipv6(host[1:-1], original, kind)
    if ":" in host:
        return _ipv6(host, original, kind)
    if "%" in host:
        host = unquote(host)
    return _hostname(host, original, kind)


def normalize_domain(value: str) -> str:
    """A host name → lower-case ASCII (punycode), no trailing dot, no port (see module doc)."""
    text = value.strip()
    if not text:
        raise NormalizationError("domain", value, "empty")
    if "[" in text or "(" in text or "{" in text:
        text = refang(text)
    if "/" in text:
        raise NormalizationError("domain", value, "has a '/' (a URL, not a domain)")
    if "@" in text:
        raise NormalizationError("domain", value, "has an '@' (an e-mail address or a URL)")
    if text.startswith("*."):
        text = text[2:]  # feeds write wildcards; a domain matches its subdomains anyway
    host = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise NormalizationError("domain", value, "unclosed '[' in IPv6 address")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            raise NormalizationError("domain", value, f"unexpected {rest!r} after the IPv6 address")
    elif ":" in text and text.count(":") == 1:
        host, _, port = text.partition(":")
        if port and not (port.isascii() and port.isdigit()):
            raise NormalizationError("domain", value, f"port {port!r} is not a number")
    return normalize_host(host, value, "domain")


@functools.lru_cache(maxsize=16_384)
def host_to_unicode(host: str) -> str:
    """``xn--`` labels back to Unicode (``xn--bcher-kva.de`` → ``bücher.de``); never raises."""
    if "xn--" not in host:
        return host
    try:
        return ".".join(
            idna.ulabel(label) if label.startswith("xn--") else label for label in host.split(".")
        )
    except (idna.IDNAError, UnicodeError):
        return host
