"""The phone fast paths (E.164, ``tel:+``, national and 00/011 forms) give exactly what the slow
path (``phonenumbers.parse`` through ``_phone_slow``) gives: the same E.164, or an error with the
same reason. Exhaustive over every example number of every region in every written form, then
random digit strings of the same shapes (seeded loops over every region, and hypothesis)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberFormat, PhoneNumberType

from engine.core import normalize as norm
from engine.core.normalize import phone, phone_plan
from engine.errors import NormalizationError

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NANP = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
PARTNER_REGIONS = [*NANP, "GB", "DE", "FR", "IN", "AU"]
# regions a value is read with besides its own: NANP (011, trunk 1; CA: not the main region
# of +1), a trunk-0 country (GB: 0 or 180020), AU (its prefix 0011 starts like 00), RU
# (prefix 810, trunk 8), none (ZZ)
READ_WITH = ("US", "CA", "GB", "AU", "RU", "ZZ")
SEPARATORS = (" ", "-", ".", "(", ")", "")


def _slow(value: str, region: str) -> tuple[str | None, str]:
    """The reference: the slow path (phonenumbers.parse), through its cache so that
    normalize_phone, falling back to it, does not read the value a second time."""
    return phone._phone_slow(value, region)


def _normalized(value: str, region: str) -> tuple[str | None, str]:
    """What normalize_phone answers, as (E.164, "") or (None, reason)."""
    try:
        return norm.normalize_phone(value, region), ""
    except NormalizationError as exc:
        return None, exc.reason


def _answered_fast(value: str, region: str) -> bool:
    """Whether normalize_phone may answer without the slow path (else it asks it, and agrees
    with it by construction)."""
    plus = value[:1] == "+" or value[:5] == "tel:+"
    return plus or phone_plan.phone_fast(value, region) is not None


def _disagreement(value: str, region: str) -> tuple[str, str, object, object] | None:
    """None when the fast path (if it answers) and normalize_phone agree with the slow path."""
    if not _answered_fast(value, region):
        return None
    expected = _slow(value, region)
    fast = phone_plan.phone_fast(value, region)
    if fast is not None and fast != expected[0]:
        return (value, region, fast, expected)
    got = _normalized(value, region)
    if got != expected:
        return (value, region, got, expected)
    return None


def _example_numbers() -> list[tuple[str, PhoneNumber]]:
    """(region, number) for every example number phonenumbers has, of every type and region,
    possible or not."""
    found = []
    for region in REGIONS:
        for kind in PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append((region, number))
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            found.append((region, invalid))
    return found


EXAMPLES = _example_numbers()


def _with_separators(digits: str, rnd: random.Random) -> str:
    """``digits`` with separators put in at random places (and sometimes around them)."""
    out = []
    for digit in digits:
        if rnd.random() < 0.3:
            out.append(rnd.choice(SEPARATORS))
        out.append(digit)
    if rnd.random() < 0.2:
        out.append(rnd.choice(SEPARATORS))
    return "".join(out)


def _written_forms(region: str, number: PhoneNumber, rnd: random.Random) -> Iterator[str]:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    yield e164
    yield international
    yield national
    yield phonenumbers.format_number(number, PhoneNumberFormat.RFC3966)
    national_digits = phonenumbers.normalize_digits_only(national)
    yield national_digits
    yield _with_separators(national_digits, rnd)
    for prefix in ("00", "011", ""):
        yield prefix + e164[1:]
        yield prefix + " " + international[1:]
        yield _with_separators(prefix + e164[1:], rnd)
    # out of a region's own dialling plan (AU 0011, RU 810 …)
    own = PhoneMetadata.metadata_for_region(region)
    if own is not None and own.preferred_international_prefix:
        yield own.preferred_international_prefix + e164[1:]
    if own is not None and own.national_prefix:
        yield own.national_prefix + e164[1:]


def test_examples_cover_every_region() -> None:
    assert {region for region, _ in EXAMPLES} == set(REGIONS)


def test_every_written_form_of_every_example_number() -> None:
    """Some 60,000 (value, region) pairs, no region left out; fast against slow wherever a
    fast path answers."""
    rnd = random.Random(20261128)
    # a dict keeps them in order, one region's numbers together: phonenumbers compiles its
    # metadata patterns again when Python's regex cache has forgotten them
    cases = {
        (text, read_with): None
        for region, number in EXAMPLES
        for text in _written_forms(region, number, rnd)
        for read_with in (region, *READ_WITH)
        # the E.164 fast path does not look at the region: the others read the rest
        if read_with in (region, "US") or text[:1] not in "+t"
    }
    failures = [problem for case in cases if (problem := _disagreement(*case)) is not None]
    assert failures == []
    fired = sum(phone_plan.phone_fast(*case) is not None for case in cases)
    assert fired > len(cases) // 3  # the fast path answers for a good share of these forms


def _random_shapes(region: str, rnd: random.Random) -> Iterator[str]:
    """Random digit strings in the shapes CDRs carry, for one region."""
    metadata = PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    cc = str(metadata.country_code)
    lengths = list(metadata.general_desc.possible_length) or [10]

    def digits(n: int) -> str:
        return "".join(rnd.choice("0123456789") for _ in range(n))

    for _ in range(3):
        n = rnd.choice(lengths) + rnd.choice((0, 0, 0, -1, 1))
        if n < 1:
            continue
        nsn = rnd.choice("123456789") + digits(n - 1)
        yield nsn
        yield "0" + nsn
        yield "1" + nsn
        yield (metadata.national_prefix or "") + nsn
        yield cc + nsn
        yield "00" + cc + nsn
        yield "011" + cc + nsn
        yield "0011" + cc + nsn
        yield digits(rnd.randint(3, 20))
        yield rnd.choice(("0", "00", "01", "011", "1", "")) + digits(rnd.randint(1, 16))


def test_random_digit_strings_in_every_region() -> None:
    rnd = random.Random(1128)
    failures = []
    fired = 0
    for region in REGIONS:
        for shape in _random_shapes(region, rnd):
            for text in (shape, _with_separators(shape, rnd)):
                for read_with in (region, "US"):
                    fired += phone_plan.phone_fast(text, read_with) is not None
                    problem = _disagreement(text, read_with)
                    if problem is not None:
                        failures.append(problem)
    assert failures == []
    assert fired > 5_000


def _reading(digits: str, region: str) -> str | None:
    """What phonenumbers.parse reads ``digits`` as in ``region`` (E.164), or None."""
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _raw_cases(rnd: random.Random) -> Iterator[tuple[str, str]]:
    for region in REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        assert metadata is not None
        cc = str(metadata.country_code)
        starts = ["", "0", "1", "8", "00", "011", "0011", "15", "90", "180020", cc, cc + "0"]
        starts.append(metadata.national_prefix or "")
        for _ in range(100):
            rest = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 17)))
            yield region, rnd.choice(starts) + rest


RAW_EXAMPLES = [
    ("AR", "11152345678901"),  # the trunk pattern's group took part: parse() applies 9\1
    ("AG", "5550147"),  # a local number the transform rule completes with 268
    ("GG", "01481123456"),
    ("US", "0050031234"),
    ("GB", "01134960000"),
    ("AE", "9710343089174830"),  # a trunk prefix behind the country code
]


def test_each_reading_is_the_one_parse_makes() -> None:
    """The readings on their own, without the E.164 conditions on what they capture (which
    would hide a wrong reading here and there): whenever a region's regex reads a digit string
    nationally, parse() reads it as that number; through the region's own prefix, as '+' and
    the rest; through a foreign 00/011, the region's own reading is no possible number."""
    rnd = random.Random(2026)
    failures = []
    read = 0
    plans = {region: phone_plan._build_plan(region, kept=False) for region in REGIONS}
    for region, digits in [*RAW_EXAMPLES, *_raw_cases(rnd)]:
        pattern, prefixes = plans[region]
        match = pattern.fullmatch(digits)
        if match is None or match.lastgroup is None:
            continue
        read += 1
        kind = match.lastgroup
        predicted = prefixes[kind] + match[kind]
        if kind in ("n", "c"):
            got = _reading(digits, region)
            if got is not None and got != predicted:
                failures.append((region, digits, kind, predicted, got))
        elif kind == "i":
            if _reading(digits, region) != _reading(predicted, "ZZ"):
                failures.append((region, digits, kind, predicted, _reading(digits, region)))
        elif phone._parse(digits, region)[0] is not None:
            failures.append((region, digits, kind, predicted, "the region reads it"))
    assert failures == []
    assert read > 8_000


@pytest.mark.parametrize("region", PARTNER_REGIONS)
def test_the_partners_national_forms_take_the_fast_path(region: str) -> None:
    """Every example number of the partners' regions, written nationally (digits only, or as
    phonenumbers formats it), is answered by the fast path, and correctly."""
    examples = [number for r, number in EXAMPLES if r == region]
    assert examples
    for number in examples:
        if phonenumbers.is_possible_number_with_reason(number) != 0:
            continue
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        for text in (national, phonenumbers.normalize_digits_only(national)):
            assert phone_plan.phone_fast(text, region) == _slow(text, region)[0] == e164, text


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("(212) 555-0147", "US", "+12125550147"),
        ("212.555.0147", "US", "+12125550147"),
        ("1-212-555-0147", "US", "+12125550147"),
        ("12125550147", "CA", "+12125550147"),
        ("4165550147", "CA", "+14165550147"),
        ("8765550147", "JM", "+18765550147"),
        ("0044 20 7946 0000", "US", "+442079460000"),
        ("011 44 20 7946 0000", "US", "+442079460000"),
        ("00 1 212 555 0147", "GB", "+12125550147"),
        ("011 44 20 7946 0000", "GB", "+442079460000"),  # 0114 … is no UK number
        ("020 7946 0000", "GB", "+442079460000"),
        ("44 20 7946 0000", "GB", "+442079460000"),
        ("030 12345678", "DE", "+493012345678"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        ("098765 43210", "IN", "+919876543210"),
        ("9876543210", "IN", "+919876543210"),
        ("02 9374 4000", "AU", "+61293744000"),
        ("0044 20 7946 0000", "ZZ", "+442079460000"),
        ("tel:+1-212-555-0147", "US", "+12125550147"),
    ],
)
def test_common_forms_are_answered_by_the_fast_path(value: str, region: str, expected: str) -> None:
    if value.startswith("tel:"):
        assert norm.normalize_phone(value, region) == _slow(value, region)[0] == expected
    else:
        assert phone_plan.phone_fast(value, region) == _slow(value, region)[0] == expected


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("0113 496 0000", "GB"),  # Leeds: the region's valid reading beats 011 as a prefix
        ("0115 003 1234", "GB"),  # Nottingham
        ("0050031234", "US"),  # ten digits, a US length: which reading wins needs is_valid()
        ("0011 44 20 7946 0000", "AU"),  # AU's own prefix, which _foreign_idd reads as 00 11…
        ("2125550147 ext 12", "US"),  # an extension: not a shape the fast path knows
        ("+44 (0) 20 7946 0000", "US"),  # a trunk prefix after the country code
    ],
)
def test_doubtful_forms_are_left_to_the_slow_path(value: str, region: str) -> None:
    assert phone_plan.phone_fast(value, region) is None
    assert _normalized(value, region) == _slow(value, region)


def test_leeds_stays_leeds() -> None:
    assert norm.normalize_phone("0113 496 0000", "GB") == "+441134960000"
    assert norm.normalize_phone("011 34 96 000 0000", "US") == "+34960000000"


def test_errors_are_the_slow_paths_errors() -> None:
    for value, region in (("212555014", "US"), ("0", "US"), ("00", "GB"), ("0044", "US")):
        expected = _slow(value, region)
        assert expected[0] is None
        assert phone_plan.phone_fast(value, region) is None
        assert _normalized(value, region) == expected


def test_regions_are_read_as_the_slow_path_reads_them() -> None:
    assert norm.normalize_phone("2125550147", "us") == "+12125550147"
    assert _normalized("2125550147", "XX") == _slow("2125550147", "XX")
    assert _normalized("2125550147", "") == _slow("2125550147", "")
    assert norm.normalize_phone("0044 20 7946 0000", "xx") == "+442079460000"


def test_a_value_parse_refuses_as_too_long_is_not_read() -> None:
    value = "212" + " " * 300 + "5550147"
    assert phone_plan.phone_fast(value, "US") is None
    assert _normalized(value, "US") == _slow(value, "US")
    assert _slow(value, "US")[0] is None


_SHAPES = st.one_of(
    st.from_regex(r"(0|1|00|011|0011|810)?[0-9]{1,17}", fullmatch=True),
    st.text(alphabet="0123456789 ()-.", min_size=1, max_size=24),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SHAPES, st.sampled_from([*PARTNER_REGIONS, "RU", "JP", "IT", "BR", "AR", "GG", "ZZ"]))
@example("011 44 20 7946 0000", "GB")
@example("0113 496 0000", "GB")
@example("0050031234", "US")
@example("12125550147", "AG")
@example("2685550147", "AG")
@example("5550147", "AG")  # a local AG number: the transform rule prepends 268
@example("09012345678", "JP")
def test_fast_path_agrees_with_the_slow_path(value: str, region: str) -> None:
    assert _disagreement(value, region) is None


def test_every_region_has_fast_readings() -> None:
    """No metadata pattern is refused as not embeddable (so no region silently loses the fast
    path), and the ZZ plan reads only 00/011."""
    refused = [r for r in REGIONS if phone_plan._build_plan(r) is phone_plan._NO_PLAN]
    assert refused == []
    assert phone_plan.phone_fast("2125550147", "ZZ") is None
    assert phone_plan.phone_fast("0012125550147", "ZZ") == "+12125550147"


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        ("^0", True),  # would match only at the start of the whole digit string
        (r"\A0", True),
        (r"(1)\1", True),  # group numbers shift inside the region's regex
        (r"(?(1)0)", True),
        (r"(?P<x>0)", True),
        (r"(?<=1)0", True),
        (r"\b0", True),
        ("(?i)0", True),
        ("0|180020", False),  # GB's trunk prefixes
        (r"([457]\d{6})$|1", False),  # AG's, with its transform rule
        (r"001[14-689]|14(?:1[14]|34|4[17]|[56]6|7[47]|88)0011", False),  # AU's prefixes
    ],
)
def test_metadata_patterns_that_cannot_be_embedded_are_refused(pattern: str, refused: bool) -> None:
    assert (phone_plan._NOT_EMBEDDABLE.search(pattern) is not None) is refused
