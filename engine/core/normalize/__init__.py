"""Normalization: one function per indicator type, used both when loading and when matching.

=============  ==========================================  =====================================
type           normal form                                 examples (input → normal form)
=============  ==========================================  =====================================
phone          E.164: ``+``, country code, national        ``+1 (800) 555-0199``, ``1-800-555-
               significant number; extensions dropped      0199``, ``tel:+18005550199`` →
                                                           ``+18005550199``; ``0044 20 7946
                                                           0000`` → ``+442079460000``
phone_prefix   ``+`` then 1–15 digits, starting like a     ``+1 800 555``, ``001800555`` →
               known country code                          ``+1800555``
domain         lower-case ASCII (IDNA 2008/UTS 46          ``WWW.Bücher.DE.:443`` →
               punycode), no trailing dot, no port,        ``www.xn--bcher-kva.de``;
               no leading ``*.``; IPv4 as dotted quad,     ``evil[.]com`` → ``evil.com``;
               IPv6 as ``[compressed]``                    ``[2001:DB8::1]`` → ``[2001:db8::1]``
url            scheme-less ``host[:port]`` + path +        ``hxxps://u:p@EVIL[.]com:443/Pay?
               ``?query``; host as a domain; userinfo,     x=1#top`` → ``evil.com/Pay?x=1``;
               fragment and default port (80, 443)         ``http://evil.com/`` → ``evil.com``
               dropped; path and query kept as written;
               a path of only ``/`` (without query)
               dropped
keyword        look-alikes folded (``fold_confusables``),  ``Micr0-SOFT`` → ``micro-soft``;
               whitespace runs collapsed, ≥ 3 characters   ``mіcrosоft`` (Cyrillic) →
                                                           ``microsoft``; ``rnicrosoft`` →
                                                           ``microsoft``
=============  ==========================================  =====================================

Each module says which choices it makes (each a trade-off; the README repeats them):
:mod:`.phone` (phone, phone_prefix) with its fast path in :mod:`.phone_plan`, :mod:`.domain`,
:mod:`.url` and :mod:`.keyword`. :func:`normalize` picks the function by indicator type.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.core.models import IndicatorType
from engine.core.normalize.domain import host_to_unicode, normalize_domain
from engine.core.normalize.keyword import fold_confusables, normalize_keyword
from engine.core.normalize.phone import (
    normalize_phone,
    normalize_phone_or_none,
    normalize_phone_prefix,
)
from engine.core.normalize.url import normalize_url, split_url
from engine.errors import NormalizationError

__all__ = [
    "fold_confusables",
    "host_to_unicode",
    "normalize",
    "normalize_domain",
    "normalize_keyword",
    "normalize_phone",
    "normalize_phone_or_none",
    "normalize_phone_prefix",
    "normalize_url",
    "split_url",
]

_BY_TYPE: dict[IndicatorType, Callable[[str], str]] = {
    IndicatorType.PHONE_PREFIX: normalize_phone_prefix,
    IndicatorType.DOMAIN: normalize_domain,
    IndicatorType.URL: normalize_url,
    IndicatorType.KEYWORD: normalize_keyword,
}


def normalize(type_: IndicatorType, value: str, region: str = "US") -> str:
    """The normal form of ``value`` as an indicator of ``type_`` (``region`` for phones)."""
    if type_ == IndicatorType.PHONE:
        return normalize_phone(value, region)
    function = _BY_TYPE.get(type_)  # a StrEnum hashes as its value: "domain" works too
    if function is None:
        raise NormalizationError(str(type_), value, "unknown indicator type")
    return function(value)
