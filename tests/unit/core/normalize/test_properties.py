"""Properties of normalization (hypothesis): idempotence, one E.164 for every written form of a
number, one value for the Unicode and punycode forms of a domain, fast paths equal to slow ones."""

from __future__ import annotations

from collections.abc import Callable

import idna
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType

from engine.core import confusables
from engine.core import normalize as norm
from engine.core.models import IndicatorType
from engine.core.normalize import domain, phone, url
from engine.core.normalize import keyword as keyword_module
from engine.errors import NormalizationError

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --------------------------------------------------------------------------- phone numbers

_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


def _example_numbers() -> list[tuple[str, PhoneNumber]]:
    """(region, number) for every region's example numbers that are possible numbers."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            if phonenumbers.is_possible_number_with_reason(number) != 0:
                continue  # IS_POSSIBLE only: the normalizer's bar
            found.append((region, number))
    return found


EXAMPLES = _example_numbers()


def _written_forms(region: str, number: PhoneNumber) -> list[tuple[str, str]]:
    """(text, region to read it with) for the ways CDRs and feeds write one number."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    rfc3966 = phonenumbers.format_number(number, PhoneNumberFormat.RFC3966)
    return [
        (e164, "US"),
        (international, "US"),
        (international, region),
        (national, region),
        (rfc3966, "US"),
        (" " + international + " ", "US"),
        ("00" + e164[1:], "US"),  # another region's international prefix on a US switch
        ("00 " + international[1:], "DE"),  # the region's own prefix
        ("011 " + international[1:], "US"),
        ("011" + e164[1:], "GB"),  # a US dialling habit on a UK switch
    ]


def _expected(text: str, read_with: str, e164: str) -> str:
    """``e164``, except where a foreign international prefix also reads as a valid national
    number of the switch's region: 011 5003 1234 on a UK switch is Nottingham, 0115 003 1234."""
    if text.startswith("011") and read_with != "US":
        try:
            national = phonenumbers.parse(text, read_with)
        except phonenumbers.NumberParseException:
            return e164
        if phonenumbers.is_valid_number(national):
            return phonenumbers.format_number(national, PhoneNumberFormat.E164)
    return e164


def test_there_are_example_numbers_for_most_regions() -> None:
    assert len({region for region, _ in EXAMPLES}) > 200


@PROPERTY_SETTINGS
@given(st.sampled_from(EXAMPLES), st.data())
def test_every_written_form_of_a_number_gives_one_e164(
    example_number: tuple[str, PhoneNumber], data: st.DataObject
) -> None:
    region, number = example_number
    expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    text, read_with = data.draw(st.sampled_from(_written_forms(region, number)))
    assert norm.normalize_phone(text, read_with) == _expected(text, read_with, expected)


def test_every_written_form_of_every_example_number() -> None:
    """The same, exhaustively (a few thousand cases): no region left to chance."""
    failures = []
    for region, number in EXAMPLES:
        expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        for text, read_with in _written_forms(region, number):
            try:
                got = norm.normalize_phone(text, read_with)
            except NormalizationError as exc:
                got = f"error: {exc.reason}"
            if got != _expected(text, read_with, expected):
                failures.append((region, text, read_with, got, expected))
    assert failures == []


def _slow_phone(value: str, region: str = "US") -> str | None:
    return phone._phone_slow.__wrapped__(value, region)[0]  # type: ignore[attr-defined]


@PROPERTY_SETTINGS
@given(st.from_regex(r"\+[1-9][0-9]{6,16}", fullmatch=True))
@example("+4402079460000")  # trunk prefix after the country code: parse() drops it
@example("+118005550199")
@example("+390612345678")  # Italian leading zero: kept
@example("+5491123456789")  # Argentina's transform rule
def test_e164_fast_path_agrees_with_phonenumbers(value: str) -> None:
    try:
        fast: str | None = norm.normalize_phone(value)
    except NormalizationError:
        fast = None
    assert fast == _slow_phone(value)


@PROPERTY_SETTINGS
@given(st.from_regex(r"\+[1-9][0-9]{6,16}", fullmatch=True), st.data())
def test_e164_with_separators_agrees_with_phonenumbers(value: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(value)), max_size=4)))
    pieces = [value[i:j] for i, j in zip([0, *cuts], [*cuts, len(value)], strict=True)]
    written = "".join(
        piece + data.draw(st.sampled_from([" ", "-", ".", "(", ")", "\u00a0", ""]))
        for piece in pieces
    ).strip()
    try:
        fast: str | None = norm.normalize_phone(written)
    except NormalizationError:
        fast = None
    assert fast == _slow_phone(written)


def test_e164_fast_path_agrees_on_every_example_number() -> None:
    for _, number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        assert norm.normalize_phone(e164) == _slow_phone(e164) == e164


_PHONE_TEXT = st.one_of(
    st.text(alphabet="+0123456789 -().", max_size=20),
    st.from_regex(r"(\+|00|011)?[1-9][0-9 ]{6,16}", fullmatch=True),
    st.text(max_size=12),
)


@PROPERTY_SETTINGS
@given(_PHONE_TEXT, st.sampled_from(["US", "GB", "IN", "DE", "AU", "FR", "BR", "JP"]))
def test_phone_normalization_is_idempotent(value: str, region: str) -> None:
    try:
        once = norm.normalize_phone(value, region)
    except NormalizationError:
        return
    assert once.startswith("+") and once[1:].isdigit()
    # the normal form reads the same whatever the region
    assert norm.normalize_phone(once, region) == once
    assert norm.normalize_phone(once, "JP") == once


@PROPERTY_SETTINGS
@given(st.text(alphabet="+0123456789 -().t:el", max_size=20))
def test_phone_prefix_normalization_is_idempotent(value: str) -> None:
    try:
        once = norm.normalize_phone_prefix(value)
    except NormalizationError:
        return
    assert norm.normalize_phone_prefix(once) == once


# --------------------------------------------------------------------------- domains

_LDH = "abcdefghijklmnopqrstuvwxyz0123456789-_"
_ascii_label = st.text(alphabet=_LDH + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20)
_unicode_letter = st.characters(
    categories=["Ll", "Lu", "Lo"], exclude_characters="\u0130", max_codepoint=0x9FFF
)
_unicode_label = st.text(alphabet=st.one_of(_unicode_letter, st.sampled_from(_LDH)), max_size=12)
_tld = st.sampled_from(["com", "de", "co.uk", "org", "xn--p1ai", "рф", "中国"])


@st.composite
def _hosts(draw: st.DrawFn, label: st.SearchStrategy[str]) -> str:
    labels = draw(st.lists(label, min_size=1, max_size=4))
    return ".".join([*labels, draw(_tld)])


@PROPERTY_SETTINGS
@given(_hosts(_unicode_label))
@example("bücher.de")
@example("micrоsoft.com")
@example("faß.de")
def test_unicode_and_punycode_forms_of_a_domain_give_one_value(host: str) -> None:
    try:
        punycode = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        assume(False)
        return
    except UnicodeError:
        assume(False)
        return
    assert norm.normalize_domain(host) == punycode
    assert norm.normalize_domain(punycode) == punycode
    assert norm.normalize_domain(punycode.upper()) == punycode
    assert norm.normalize_domain(host + ".") == punycode
    assert norm.normalize_domain(host_to_unicode := norm.host_to_unicode(punycode)) == punycode
    assert idna.encode(host_to_unicode, uts46=True).decode("ascii") == punycode


@PROPERTY_SETTINGS
@given(st.one_of(_hosts(_ascii_label), _hosts(_unicode_label), st.text(max_size=30)))
def test_domain_normalization_is_idempotent(value: str) -> None:
    try:
        once = norm.normalize_domain(value)
    except NormalizationError:
        return
    assert once.isascii() and once == once.lower()
    assert norm.normalize_domain(once) == once


@PROPERTY_SETTINGS
@given(_hosts(_ascii_label))
def test_ascii_fast_path_agrees_with_the_precise_path(host: str) -> None:
    try:
        fast: str | Exception = norm.normalize_domain(host)
    except NormalizationError as exc:
        fast = exc
    try:
        slow: str | Exception = domain._hostname(host, host, "domain")
    except NormalizationError as exc:
        slow = exc
    if isinstance(fast, Exception) or isinstance(slow, Exception):
        assert isinstance(fast, Exception) and isinstance(slow, Exception)
    else:
        assert fast == slow


# --------------------------------------------------------------------------- urls

_path_char = st.sampled_from("abcXYZ019-._~%/:@!$&'()*+,;=")
_path = st.text(alphabet=_path_char, max_size=15).map(lambda p: "/" + p)
_query = st.text(alphabet=st.sampled_from("abcXYZ019-._~%=&+/?"), max_size=10)


@st.composite
def _urls(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(host, path, query, a written form of that URL)."""
    host = draw(_hosts(_ascii_label))
    path = draw(_path)
    query = draw(_query)
    scheme = draw(st.sampled_from(["", "http://", "https://", "HTTPS://", "hxxps://", "//"]))
    # "user:pass@host" without a scheme reads as the scheme "user:", as in a browser
    userinfo = draw(
        st.sampled_from(["", "user@", "microsoft.com@"] + (["user:pass@"] if scheme else []))
    )
    port = draw(st.sampled_from(["", ":80", ":443"]))
    fragment = draw(st.sampled_from(["", "#", "#top", "#/a?b"]))
    written_host = draw(st.sampled_from([host, host.upper(), host + "."]))
    text = f"{scheme}{userinfo}{written_host}{port}{path}"
    if query:
        text += "?" + query
    return host, path, query, text + fragment


@PROPERTY_SETTINGS
@given(_urls())
def test_url_normal_form(parts: tuple[str, str, str, str]) -> None:
    host, path, query, text = parts
    try:
        expected_host = norm.normalize_domain(host)
    except NormalizationError:
        with pytest.raises(NormalizationError):
            norm.normalize_url(text)
        return
    once = norm.normalize_url(text)
    # the host, then the path as written, then the query; a bare "/" dropped
    if query:
        assert once == f"{expected_host}{path}?{query}"
    elif path == "/":
        assert once == expected_host
    else:
        assert once == f"{expected_host}{path}"
    assert norm.normalize_url(once) == once
    assert "".join(norm.split_url(text)) == once
    # prefix matching: the host alone and the URL without its query are prefixes
    assert once.startswith(norm.normalize_url(expected_host))
    assert once.startswith(norm.normalize_url(f"{expected_host}{path}"))


@PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=40), _urls().map(lambda parts: parts[3])))
def test_url_normalization_is_idempotent_and_fast_path_agrees(value: str) -> None:
    try:
        once: str | None = norm.normalize_url(value)
    except NormalizationError:
        once = None
    try:
        general: str | None = "".join(url._split_url_general(value))
    except NormalizationError:
        general = None
    assert once == general
    if once is not None:
        assert norm.normalize_url(once) == once


# --------------------------------------------------------------------------- keywords


@PROPERTY_SETTINGS
@given(st.text(max_size=40))
@example("rrnn")
@example("vvv")
@example("ｒｎ")
@example("r\u0301n")
def test_fold_confusables_is_idempotent(text: str) -> None:
    once = norm.fold_confusables(text)
    assert norm.fold_confusables(once) == once


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_fold_ascii_fast_path_agrees_with_the_table(text: str) -> None:
    assert norm.fold_confusables(text) == _fold_by_table(text)


def _fold_by_table(text: str) -> str:
    folded = text.translate(keyword_module._FOLD_TABLE)
    for old, new in confusables.MULTI_CHAR_FOLD:
        folded = folded.replace(old, new)
    return folded


@PROPERTY_SETTINGS
@given(st.text(max_size=40))
def test_keyword_normalization_is_idempotent(value: str) -> None:
    try:
        once = norm.normalize_keyword(value)
    except NormalizationError:
        return
    assert norm.normalize_keyword(once) == once


@PROPERTY_SETTINGS
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=3, max_size=20), st.data())
def test_a_keyword_is_found_in_its_look_alikes(keyword: str, data: st.DataObject) -> None:
    look_alikes = {"o": "0оοｏ", "l": "1|ӏ", "e": "3еｅ", "s": "5ѕ", "a": "аɑ", "i": "іｉ"}
    disguised = "".join(
        data.draw(st.sampled_from(look_alikes.get(char, "") + char + char.upper()))
        for char in keyword
    )
    assert norm.fold_confusables(keyword) in norm.fold_confusables(f"www.{disguised}-help.com")


# --------------------------------------------------------------------------- every type

_NORMALIZERS: dict[IndicatorType, Callable[[str], str]] = {
    kind: (lambda value, kind=kind: norm.normalize(kind, value)) for kind in IndicatorType
}


@PROPERTY_SETTINGS
@given(st.sampled_from(list(IndicatorType)), st.text(max_size=30))
def test_normalizing_twice_equals_normalizing_once(kind: IndicatorType, value: str) -> None:
    normalizer = _NORMALIZERS[kind]
    try:
        once = normalizer(value)
    except NormalizationError:
        return
    assert normalizer(once) == once
