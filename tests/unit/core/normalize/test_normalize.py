"""normalize(): one entry point that picks the normalizer by indicator type."""

from __future__ import annotations

import pytest

from engine.core.models import IndicatorType
from engine.core.normalize import (
    normalize,
)
from engine.errors import NormalizationError

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
