"""URLs on the formats telecom partners and SOC feeds really send."""

from __future__ import annotations

import pytest

from engine.core.normalize import (
    normalize_url,
    split_url,
)
from engine.errors import NormalizationError

# --------------------------------------------------------------------------- url


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://EVIL.com:443/pay?x=1", "evil.com/pay?x=1"),
        ("http://evil.com", "evil.com"),
        ("http://evil.com/", "evil.com"),
        ("evil.com", "evil.com"),
        ("evil.com/", "evil.com"),
        ("HTTP://EVIL.COM/Pay/Now", "evil.com/Pay/Now"),  # path case kept
        ("https://evil.com:8443/x", "evil.com:8443/x"),
        ("http://evil.com:80/x", "evil.com/x"),
        ("http://evil.com:0080/x", "evil.com/x"),
        ("evil.com:8080/x", "evil.com:8080/x"),
        ("https://evil.com/a#fragment", "evil.com/a"),
        ("https://evil.com/#/route", "evil.com"),
        ("https://evil.com?x=1", "evil.com/?x=1"),
        ("https://evil.com/?x=1#f", "evil.com/?x=1"),
        ("https://evil.com/pay?", "evil.com/pay"),
        ("https://user:pass@evil.com/x", "evil.com/x"),
        ("https://microsoft.com@evil.com/x", "evil.com/x"),  # the userinfo trick
        ("https://evil.com/path@x/y", "evil.com/path@x/y"),
        ("//evil.com/a", "evil.com/a"),
        ("https://www.bücher.de/straße", "www.xn--bcher-kva.de/straße"),
        ("https://xn--bcher-kva.de/a", "xn--bcher-kva.de/a"),
        ("https://evil.com./a", "evil.com/a"),
        ("http://192.0.2.1:8080/a", "192.0.2.1:8080/a"),
        ("http://[2001:DB8::1]:443/a", "[2001:db8::1]/a"),
        ("http://[2001:db8::1]:8443/a", "[2001:db8::1]:8443/a"),
        ("https://evil.com\\pay\\now?x=\\y", "evil.com/pay/now?x=\\y"),
        ("https://evil.com/a%2Fb?q=%41", "evil.com/a%2Fb?q=%41"),
        ("ftp://evil.com:21/x", "evil.com/x"),
        ("wss://evil.com:443/socket", "evil.com/socket"),
        ("http://ev\til.com/a", "evil.com/a"),  # WHATWG drops tabs and newlines
        # defanged forms
        ("hxxp://evil[.]com/pay", "evil.com/pay"),
        ("hxxps://evil[.]com/pay", "evil.com/pay"),
        ("hXXps://user@EVIL(.)com:443/Pay?x=1#top", "evil.com/Pay?x=1"),
        ("hxxps[:]//evil[.]com/", "evil.com"),
        ("h**p://evil{.}com/a", "evil.com/a"),
        ("hxxp[://]evil[.]com[:]8080/a", "evil.com:8080/a"),
        ("ftp[:]//evil[.]com/a", "evil.com/a"),
        ("https://evil.com/wiki/(.)/[.]", "evil.com/wiki/(.)/[.]"),  # a path is kept
    ],
)
def test_url(value: str, expected: str) -> None:
    assert normalize_url(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("https://", "no host"),
        ("mailto:a@evil.com", "unsupported scheme 'mailto'"),
        ("javascript:alert(1)", "unsupported scheme 'javascript'"),
        ("user:pass@evil.com/x", "unsupported scheme 'user'"),  # as a browser reads it
        ("http://evil.com:99999/", "port '99999' is not a number from 0 to 65535"),
        ("http://evil.com:8o/", "port '8o' is not a number"),
        ("http://exa mple.com/", "has a character not allowed in a host name"),
        ("http://a..b/", "empty label"),
        ("http://[::1/", "unclosed '['"),
    ],
)
def test_url_rejects(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_url(value)
    assert reason in info.value.reason
    assert info.value.kind == "url"


def test_url_prefix_matching_is_sane() -> None:
    full = normalize_url("https://EVIL.com:443/pay?x=1")
    assert full == "evil.com/pay?x=1"
    assert full.startswith(normalize_url("evil.com/pay"))
    assert full.startswith(normalize_url("http://evil.com/"))
    assert full.startswith(normalize_url("evil.com/pay?x=1#ignored"))


def test_split_url() -> None:
    assert split_url("https://EVIL.com:443/pay?x=1#f") == ("evil.com", "/pay?x=1")
    assert split_url("evil.com:8080") == ("evil.com:8080", "")
    assert split_url("https://u@[::1]:8443/") == ("[::1]:8443", "")
    with pytest.raises(NormalizationError):
        split_url("not a url")
