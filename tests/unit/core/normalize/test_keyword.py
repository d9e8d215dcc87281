"""Keywords and look-alike folding."""

from __future__ import annotations

import pytest

from engine.core import confusables
from engine.core.normalize import (
    fold_confusables,
    host_to_unicode,
    normalize_domain,
    normalize_keyword,
)
from engine.errors import NormalizationError

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
