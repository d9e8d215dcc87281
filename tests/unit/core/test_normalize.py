"""Every normalizer on the formats telecom partners and SOC feeds really send."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from engine.core import confusables
from engine.core.models import IndicatorType
from engine.core.normalize import (
    fold_confusables,
    host_to_unicode,
    normalize,
    normalize_domain,
    normalize_keyword,
    normalize_phone,
    normalize_phone_prefix,
    normalize_url,
    registrable_domain,
    split_url,
)
from engine.errors import NormalizationError, ScamwatchError

# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        # US / NANP
        ("+18005550199", "US", "+18005550199"),
        ("+1 (800) 555-0199", "US", "+18005550199"),
        ("1-800-555-0199", "US", "+18005550199"),
        ("18005550199", "US", "+18005550199"),
        ("800.555.0199", "US", "+18005550199"),
        ("(888) 555-0142", "US", "+18885550142"),
        ("tel:+1-800-555-0199", "US", "+18005550199"),
        ("tel:+1-800-555-0199;ext=42", "US", "+18005550199"),
        ("+1 800 555 0199 ext. 42", "US", "+18005550199"),
        ("  +1 800 555 0199  ", "US", "+18005550199"),
        ("+1.800.555.0199", "US", "+18005550199"),
        ("+1\u00a0800\u00a0555\u00a00199", "US", "+18005550199"),
        ("＋１ ８００ ５５５ ０１９９", "US", "+18005550199"),  # full-width digits
        ("001 800 555 0199", "GB", "+18005550199"),
        # UK
        ("+44 20 7946 0000", "US", "+442079460000"),
        ("+44 (0)20 7946 0000", "US", "+442079460000"),
        ("020 7946 0000", "GB", "+442079460000"),
        ("0044 20 7946 0000", "US", "+442079460000"),  # 00 on a US switch
        ("0044 20 7946 0000", "GB", "+442079460000"),
        ("011 44 20 7946 0000", "US", "+442079460000"),
        ("011 44 20 7946 0000", "GB", "+442079460000"),  # 011 on a UK switch
        ("0113 496 0000", "GB", "+441134960000"),  # Leeds, not an international prefix
        ("07700 900123", "GB", "+447700900123"),
        # India
        ("080 4718 2233", "IN", "+918047182233"),
        ("+91 80 4718 2233", "US", "+918047182233"),
        ("98765 43210", "IN", "+919876543210"),
        ("0091 98765 43210", "US", "+919876543210"),
        # Germany
        ("030 1234567", "DE", "+49301234567"),
        ("+49 (0)30 1234567", "US", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("011 49 30 1234567", "US", "+49301234567"),
        # Australia
        ("(02) 9876 5432", "AU", "+61298765432"),
        ("0412 345 678", "AU", "+61412345678"),
        ("0011 61 2 9876 5432", "AU", "+61298765432"),
        ("+61 2 9876 5432", "US", "+61298765432"),
        # region spelled in lower case
        ("020 7946 0000", "gb", "+442079460000"),
    ],
)
def test_phone_real_world_formats(value: str, region: str, expected: str) -> None:
    assert normalize_phone(value, region) == expected


def test_phone_default_region_is_us() -> None:
    assert normalize_phone("(888) 555-0142") == "+18885550142"


@pytest.mark.parametrize(
    "value", ["anonymous", "Anonymous", "PRIVATE", "unknown", "restricted", "withheld"]
)
def test_phone_withheld_is_rejected_as_withheld(value: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_phone(value)
    assert info.value.reason == f"withheld ({value.lower()})"
    assert info.value.kind == "phone"
    assert info.value.value == value


@pytest.mark.parametrize(
    ("value", "region", "reason"),
    [
        ("", "US", "empty"),
        ("   ", "US", "empty"),
        ("hello", "US", "not a phone number"),
        ("12", "US", "too short"),
        ("+1 800 555", "US", "too short for its country"),
        ("+1 800 555 0199 1234", "US", "too long for its country"),
        ("555 0199", "US", "a local number without its area code"),
        ("+999 1234 5678", "US", "unknown country code"),
        ("020 7946 0000", "XX", "unknown region 'XX'"),
    ],
)
def test_phone_garbage_is_rejected_with_a_reason(value: str, region: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_phone(value, region)
    assert reason in info.value.reason


def test_phone_error_is_a_scamwatch_value_error() -> None:
    with pytest.raises(ValueError) as info:
        normalize_phone("garbage")
    assert isinstance(info.value, ScamwatchError)
    assert not info.value.retriable
    assert "garbage" in str(info.value)


def test_phone_accepts_possible_but_invalid_numbers() -> None:
    # 555-01xx are fictional (phonenumbers calls them invalid), yet feeds and tests use them
    assert normalize_phone("+1 202 555 0123") == "+12025550123"


def test_phone_e164_fast_path_gives_what_parse_gives() -> None:
    # parse() drops a trunk prefix written after the country code: so must we
    assert normalize_phone("+4402079460000") == "+442079460000"
    assert normalize_phone("+118005550199") == "+18005550199"
    # Italian numbers keep their leading zero
    assert normalize_phone("+390612345678") == "+390612345678"


# --------------------------------------------------------------------------- phone_prefix


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+1800555", "+1800555"),
        ("+1 800 555", "+1800555"),
        ("+1 (800) 555-", "+1800555"),
        ("001800555", "+1800555"),
        ("011 44 20", "+4420"),
        ("tel:+44-20", "+4420"),
        ("+7", "+7"),
        ("+99", "+99"),  # 992…998 exist
    ],
)
def test_phone_prefix(value: str, expected: str) -> None:
    assert normalize_phone_prefix(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("1800555", "must start with + (or 00) and the country code"),
        ("+", "no digits after +"),
        ("+0", "does not start with a country code"),
        ("+1800abc", "has characters other than digits"),
        ("+1234567890123456", "longer than 15 digits"),
    ],
)
def test_phone_prefix_rejects(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_phone_prefix(value)
    assert reason in info.value.reason


def test_normalized_phone_starts_with_its_normalized_prefix() -> None:
    assert normalize_phone("1-800-555-0199").startswith(normalize_phone_prefix("+1 800 555"))


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


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.com", "evil.com"),
        ("a.b.evil.com", "evil.com"),
        ("a.b.evil.co.uk", "evil.co.uk"),
        ("x.blogspot.com", "x.blogspot.com"),  # private section of the list
        ("www.xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("co.uk", None),
        ("com", None),
        ("192.0.2.1", None),
        ("[2001:db8::1]", None),
        ("", None),
    ],
)
def test_registrable_domain(host: str, expected: str | None) -> None:
    assert registrable_domain(host) == expected


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


# --------------------------------------------------------------------------- keyword


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("microsoft-support", "microsoft-support"),
        ("Microsoft-Support", "microsoft-support"),
        ("MICR0S0FT", "microsoft"),
        ("micros0ft", "microsoft"),
        ("rnicrosoft", "microsoft"),
        ("paypa1", "paypal"),
        ("paypa|", "paypal"),
        ("arnazon", "amazon"),
        ("vvindows", "windows"),
        ("amaz0n-supp0rt", "amazon-support"),
        ("mіcrosоft", "microsoft"),  # Cyrillic і, о
        ("аррӏе", "apple"),  # Cyrillic а р р ӏ е: xn--80ak6aa92e.com
        ("APPӀE", "apple"),  # Cyrillic capital palochka
        ("micrοsοft", "microsoft"),  # Greek omicron
        ("ΜΙCROSOFT", "μicrosoft"),  # Greek capitals fold as a host shows them: μ ι
        ("ｍｉｃｒｏｓｏｆｔ", "microsoft"),  # full-width
        ("micrósoft", "microsoft"),  # accents never separate look-alikes
        ("micro\u200bsoft", "microsoft"),  # zero-width space
        ("micro\u00adsoft", "microsoft"),  # soft hyphen
        ("  micro   soft\t", "micro soft"),
        ("ﬁnance", "finance"),  # ligature
    ],
)
def test_keyword(value: str, expected: str) -> None:
    assert normalize_keyword(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "empty"), ("   ", "empty"), ("\u200b", "empty"), ("ab", "shorter than 3 characters")],
)
def test_keyword_rejects(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_keyword(value)
    assert reason in info.value.reason


def test_fold_confusables_on_hosts_and_urls() -> None:
    # what the matcher does with a punycode host before scanning it for keywords
    host = normalize_domain("www.mіcrosоft-support.com")
    assert host.startswith("www.xn--")
    assert "microsoft-support" in fold_confusables(host_to_unicode(host))
    assert fold_confusables("EVIL.com/Micr0soft-Help") == "evil.com/microsoft-help"


def test_fold_confusables_is_idempotent_on_tricky_runs() -> None:
    for text in ["rrnn", "vvv", "rnrn", "r\u200bn", "ｒｎ", "vᴠv", "mrn", "1l|I"]:
        once = fold_confusables(text)
        assert fold_confusables(once) == once, text


def test_ascii_fast_path_agrees_with_the_table() -> None:
    table = confusables.load_fold_table()
    for code in range(128):
        char = chr(code)
        assert fold_confusables(char) == table.get(code, char)


def test_fold_table_outputs_are_fixed_points() -> None:
    table = confusables.load_fold_table()
    for folded in table.values():
        for char in folded:
            assert ord(char) not in table, (folded, char)
    # the multi-character folds produce letters that fold to themselves
    for _, new in confusables.MULTI_CHAR_FOLD:
        assert ord(new) not in table


def test_fold_table_is_shipped_with_its_provenance() -> None:
    text = resources.files("engine").joinpath("data", confusables.DATA_FILE).read_text("utf-8")
    about = json.loads(text)["about"]
    assert "TR39" in about and "confusables" in about


def test_fold_table_build_matches_tr39_semantics() -> None:
    # a few lines in the format of Unicode's confusables.txt
    tr39 = confusables.parse_confusables(
        [
            "# comment",
            "043E ;\t006F ;\tMA\t# ( о → o ) CYRILLIC SMALL LETTER O → LATIN SMALL LETTER O",
            "006D ;\t0072 006E ;\tMA\t# ( m → rn )",
            "A77A ;\tA779 ;\tMA\t# ( ꝺ → Ꝺ ) upper-case prototype",
        ]
    )
    assert tr39 == {"о": "o", "m": "rn", "ꝺ": "Ꝺ"}
    fold = confusables._fold_char
    assert fold("о", tr39) == "o"
    assert fold("m", tr39) == "m"  # ASCII keeps our own table: rn → m, never m → rn
    assert fold("Ꝺ", tr39) == "ꝺ"  # no cycle between case folding and TR39
    assert fold("É", tr39) == "e"


# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        (IndicatorType.PHONE, "1-800-555-0199", "+18005550199"),
        (IndicatorType.PHONE_PREFIX, "+1 800 555", "+1800555"),
        (IndicatorType.DOMAIN, "EVIL.com.", "evil.com"),
        (IndicatorType.URL, "https://EVIL.com/x", "evil.com/x"),
        (IndicatorType.KEYWORD, "Micr0soft", "microsoft"),
        ("domain", "EVIL.com", "evil.com"),
    ],
)
def test_normalize_dispatches_by_type(type_: IndicatorType, value: str, expected: str) -> None:
    assert normalize(type_, value) == expected


def test_normalize_passes_the_region_to_phones() -> None:
    assert normalize(IndicatorType.PHONE, "080 4718 2233", "IN") == "+918047182233"


def test_normalize_rejects_an_unknown_type() -> None:
    with pytest.raises(NormalizationError) as info:
        normalize("email", "a@b.c")  # type: ignore[arg-type]
    assert info.value.reason == "unknown indicator type"
