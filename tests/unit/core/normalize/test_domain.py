"""Host names on the formats telecom partners and SOC feeds really send."""

from __future__ import annotations

import pytest

from engine.core.normalize import (
    host_to_unicode,
    normalize_domain,
)
from engine.errors import NormalizationError

# --------------------------------------------------------------------------- domain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("example.com.", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.:443", "example.com"),
        ("  example.com \n", "example.com"),
        ("*.evil.com", "evil.com"),
        ("evil[.]com", "evil.com"),
        ("evil(.)com", "evil.com"),
        ("evil{.}co[.]uk", "evil.co.uk"),
        ("evil[dot]com", "evil.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("my_site.blogspot.com", "my_site.blogspot.com"),
        ("r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        # IDN: Unicode and punycode forms are the same domain
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.DE", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
        ("www.bücher.de:443", "www.xn--bcher-kva.de"),
        ("micrоsoft.com", "xn--micrsoft-qbh.com"),  # Cyrillic о: a different domain
        ("xn--micrsoft-qbh.com", "xn--micrsoft-qbh.com"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008, not transitional (fass.de)
        ("ＥＶＩＬ．ｃｏｍ", "evil.com"),  # full-width, UTS 46 mapping
        ("evil。com", "evil.com"),  # ideographic full stop
        ("_dmarc.bücher.de", "_dmarc.xn--bcher-kva.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        # IP literals stay literal
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("[2001:db8:0:0:0:0:0:1]:443", "[2001:db8::1]"),
        ("2001:db8::1", "[2001:db8::1]"),
    ],
)
def test_domain(value: str, expected: str) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (".", "empty host"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("a b.com", "label 'a b' has a character not allowed in a host name (' ')"),
        ("evil!.com", "label 'evil!' has a character not allowed in a host name ('!')"),
        ("a" * 64 + ".com", "is longer than 63 characters"),
        (".".join(["a" * 60] * 5), "longer than 253 characters"),
        ("xn--abc-.com", "not a valid internationalized label"),
        ("💩.la", "not a valid internationalized label"),
        ("ü_x.de", "not a valid internationalized label"),
        ("1.2.3.999", "not a valid IPv4 address"),
        ("host.123", "top-level label '123' is all digits"),
        ("http://evil.com/x", "has a '/'"),
        ("user@evil.com", "has an '@'"),
        ("evil.com:http", "port 'http' is not a number"),
        ("[2001:db8::1", "unclosed '['"),
        ("[2001:db8::zz]", "not a valid IPv6 address"),
    ],
)
def test_domain_rejects(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_domain(value)
    assert reason in info.value.reason
    assert info.value.kind == "domain"


def test_host_to_unicode() -> None:
    assert host_to_unicode("www.xn--bcher-kva.de") == "www.bücher.de"
    assert host_to_unicode("xn--micrsoft-qbh.com") == "micrоsoft.com"
    assert host_to_unicode("example.com") == "example.com"
    assert host_to_unicode("xn--zz-.com") == "xn--zz-.com"  # broken punycode: unchanged
