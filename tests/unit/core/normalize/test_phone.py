"""Phone numbers and number blocks on the formats telecom partners and SOC feeds really send."""

from __future__ import annotations

import pytest

from engine.core.normalize import (
    normalize_phone,
    normalize_phone_prefix,
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
