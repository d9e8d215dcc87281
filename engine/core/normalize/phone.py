"""Phone numbers and number blocks (prefixes) → E.164.

- **phone**: a number must be *possible* (``phonenumbers.is_possible_number_with_reason`` is
  ``IS_POSSIBLE``: right length for its country), not *valid*: toll-free and test numbers
  such as ``+1 800 555 0199`` must load, and ``phonenumbers`` calls 555 numbers invalid. A
  local-only number (a US number without area code) is rejected: it has no E.164 form.
  Withheld values (``anonymous``, ``private``, ``restricted``, ``unknown``, …) and empty
  strings raise :class:`NormalizationError`, which the matcher reads as "not a number".
  ``00`` and ``011`` are read as international prefixes whatever the region (a CDR from a
  US switch may carry ``0044…``), unless the region's own reading is a valid number there
  (``0113 496 0000`` on a UK switch is Leeds). Extensions are dropped. Speed: E.164 (also
  with separators or as ``tel:+…``) and national and ``00``/``011`` forms of digits and
  `` ()-.`` skip ``phonenumbers.parse`` through the regexes of
  :mod:`engine.core.normalize.phone_plan`; tests/unit/core/normalize/test_phone_plan.py
  checks that they agree with the slow path on every example number of every region in
  every written form. Other values go through a bounded LRU cache keyed by
  ``(value, region)`` that remembers errors too.
  :func:`normalize_phone_or_none` answers ``None`` where :func:`normalize_phone` raises.
- **phone_prefix**: needs its country code (``+`` or ``00``): a national prefix cannot be
  read without a region, and a prefix is too short for ``phonenumbers`` to guess one.
"""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

from engine.core.normalize.phone_plan import COUNTRY_CODES, SUPPORTED_REGIONS, e164_kept, phone_fast
from engine.errors import NormalizationError

PHONE_CACHE_SIZE = 65_536
# phonenumbers.parse refuses longer input as too long (its _MAX_INPUT_STRING_LENGTH); checked
# first, so a hostile megabyte "number" costs nothing (the fast paths scan the whole text)
MAX_PHONE_TEXT_LENGTH = 250
WITHHELD = frozenset(
    {
        "anonymous",
        "private",
        "restricted",
        "unknown",
        "unavailable",
        "withheld",
        "blocked",
        "none",
        "null",
        "n/a",
        "-",
        "0",
    }
)

_LENGTH_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "not a possible length for its country",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "no country code, and no region to read it in",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def _parse(text: str, region: str | None) -> tuple[PhoneNumber | None, str]:
    """(a possible number, "") or (None, why not)."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and "+" in text:
            return None, "unknown country code"
        return None, _PARSE_REASONS.get(exc.error_type, "not a phone number")
    result = phonenumbers.is_possible_number_with_reason(number)
    if result == ValidationResult.IS_POSSIBLE:
        return number, ""
    return None, _LENGTH_REASONS.get(result, "not a possible number")


def _foreign_idd(text: str) -> PhoneNumber | None:
    """``00…``/``011…`` read as an international prefix whatever the region's own is."""
    if text.startswith("+"):
        return None
    digits = phonenumbers.normalize_digits_only(text)
    for idd in ("011", "00"):
        if digits.startswith(idd) and len(digits) > len(idd) + 2:
            number, _ = _parse("+" + digits[len(idd) :], None)
            if number is not None:
                return number
    return None


def _stable_e164(e164: str) -> tuple[str | None, str]:
    """Read ``e164`` again until it reads as itself, so that normalizing is idempotent: parse()
    can leave a trunk prefix after the country code (``000000`` in DE → ``+4900000``) that a
    second parse() drops."""
    for _ in range(3):
        if e164_kept().fullmatch(e164) is not None:
            return e164, ""  # the fast path's regex already knows parse() keeps it
        number, reason = _parse(e164, None)
        if number is None:
            return None, reason
        again = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if again == e164:
            return e164, ""
        e164 = again
    return None, "does not settle on one E.164 form"


@functools.lru_cache(maxsize=PHONE_CACHE_SIZE)
def _phone_slow(value: str, region: str) -> tuple[str | None, str]:
    """(E.164, "") or (None, reason). Errors are cached too: CDRs repeat their garbage."""
    text = value.strip()
    if not text:
        return None, "empty"
    if text.lower() in WITHHELD:
        return None, f"withheld ({text.lower()})"
    reg = region.upper() if region else "ZZ"
    if reg not in SUPPORTED_REGIONS:
        reg = "ZZ"  # '+' numbers still parse; national formats then fail with a reason
    number, reason = _parse(text, reg)
    # an international prefix of another region: 0044… on a US switch, 011 44… on a UK one.
    # When both readings are possible (0050031234 has ten digits, a US length), the region's
    # reading wins only if it is a valid number there (0113 496 0000 is Leeds, not +13…).
    foreign = _foreign_idd(text)
    if foreign is not None and (number is None or not phonenumbers.is_valid_number(number)):
        number = foreign
    if number is not None:
        return _stable_e164(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    if reg == "ZZ" and region and region.upper() not in SUPPORTED_REGIONS:
        reason = f"{reason} (unknown region {region!r})"
    return None, reason


_E164_SEPARATORS = str.maketrans("", "", " -.()\u00a0")


def normalize_phone(value: str, region: str = "US") -> str:
    """A phone number in any common written form → E.164 (``+18005550199``).

    ``region`` (ISO 3166 alpha-2) reads national formats: ``(888) 555-0142`` with ``US``,
    ``080 4718 2233`` with ``IN``. Raises :class:`NormalizationError` for withheld,
    empty, garbage and impossible numbers, and for text longer than
    :data:`MAX_PHONE_TEXT_LENGTH`.
    """
    if len(value) > MAX_PHONE_TEXT_LENGTH and len(value.strip()) > MAX_PHONE_TEXT_LENGTH:
        # the slow path's own answer (parse() refuses it), without the fast paths' scans
        raise NormalizationError("phone", value[:40] + "…", "too long")
    e164 = normalize_phone_or_none(value, region)
    if e164 is None:
        # every way to None ends in _phone_slow, whose (cached) answer says why
        raise NormalizationError("phone", value, _phone_slow(value, region)[1])
    return e164


def normalize_phone_or_none(value: str, region: str = "US") -> str | None:
    """:func:`normalize_phone`, with ``None`` where it raises (the matcher's hot path: a
    withheld caller is common, and raising costs more than the reading)."""
    if len(value) > MAX_PHONE_TEXT_LENGTH and len(value.strip()) > MAX_PHONE_TEXT_LENGTH:
        return None  # too long (see normalize_phone)
    if value[:1] == "+":
        kept = e164_kept()
        if kept.fullmatch(value) is not None:
            return value  # already E.164: parse() would give it back unchanged
        # E.164 written with spaces, dashes, dots or brackets: "+1 (800) 555-0199"
        compact = value.translate(_E164_SEPARATORS)
        if compact != value and kept.fullmatch(compact) is not None:
            return compact
    elif value[:5] == "tel:+":
        # RFC 3966 (``tel:+1-800-555-0199``): parse() reads what follows ``tel:``
        compact = value[4:].translate(_E164_SEPARATORS)
        if e164_kept().fullmatch(compact) is not None:
            return compact
    else:
        # national and 00/011 forms of the common shapes ((800) 555-0199, 0044 20 …, 020 …);
        # not cached: most numbers in a CDR stream are seen once, and a cache miss costs more
        # than this regex
        fast = phone_fast(value, region)
        if fast is not None:
            return fast
    return _phone_slow(value, region)[0]


_PREFIX_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")
_COUNTRY_CODE_STARTS = frozenset(cc[:n] for cc in COUNTRY_CODES for n in range(1, len(cc) + 1))


def normalize_phone_prefix(value: str) -> str:
    """A number block → ``+`` and digits (``+1 800 555`` → ``+1800555``).

    It must carry its country code (``+`` or ``00``): without one a prefix cannot be read.
    """
    text = value.strip()
    if text[:4].lower() == "tel:":
        text = text[4:]
    compact = text.translate(_PREFIX_SEPARATORS)
    if not compact:
        raise NormalizationError("phone_prefix", value, "empty")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith("011"):
        compact = "+" + compact[3:]
    if not compact.startswith("+"):
        raise NormalizationError(
            "phone_prefix", value, "must start with + (or 00) and the country code"
        )
    digits = compact[1:]
    if not digits:
        raise NormalizationError("phone_prefix", value, "no digits after +")
    if not (digits.isascii() and digits.isdigit()):
        raise NormalizationError("phone_prefix", value, "has characters other than digits")
    if len(digits) > 15:
        raise NormalizationError("phone_prefix", value, "longer than 15 digits (E.164 maximum)")
    if digits[:3] not in _COUNTRY_CODE_STARTS and not any(
        digits[:n] in COUNTRY_CODES for n in (1, 2, 3)
    ):
        raise NormalizationError("phone_prefix", value, "does not start with a country code")
    return "+" + digits
