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

Choices (each a trade-off; the README repeats them):

- **phone**: a number must be *possible* (``phonenumbers.is_possible_number_with_reason`` is
  ``IS_POSSIBLE``: right length for its country), not *valid*: toll-free and test numbers
  such as ``+1 800 555 0199`` must load, and ``phonenumbers`` calls 555 numbers invalid. A
  local-only number (a US number without area code) is rejected: it has no E.164 form.
  Withheld values (``anonymous``, ``private``, ``restricted``, ``unknown``, …) and empty
  strings raise :class:`NormalizationError`, which the matcher reads as "not a number".
  ``00`` and ``011`` are read as international prefixes whatever the region (a CDR from a
  US switch may carry ``0044…``), unless the region's own reading is a valid number there
  (``0113 496 0000`` on a UK switch is Leeds). Extensions are dropped. Speed: E.164, also
  written with spaces, dashes, dots or brackets or as ``tel:+…``, skips
  ``phonenumbers.parse`` through one regex that knows, per country code, the possible lengths
  and the trunk prefixes parse() would drop (property tests check it agrees with
  ``phonenumbers``). National and ``00``/``011`` forms written with digits and `` ()-.``
  only (``(800) 555-0199``, ``1 800 555 0199``, ``020 7946 0000`` in GB, ``0044 20 …``)
  skip it too, through one regex per region built from that region's metadata
  (international and trunk prefixes, general pattern, possible lengths) whose alternatives
  restate the tests parse() makes; anything it is not sure of (``0113 …`` in GB, where
  validity decides) falls through. tests/unit/core/test_normalize_fastpath.py checks that both
  agree with the slow path on every example number of every region in every written form.
  Other values go through a bounded LRU cache keyed by ``(value, region)`` that remembers
  errors too. The regexes are built on first use (~0.1 s for E.164: it reads every
  country's metadata; ~2 ms per region).
- **phone_prefix**: needs its country code (``+`` or ``00``): a national prefix cannot be
  read without a region, and a prefix is too short for ``phonenumbers`` to guess one.
- **domain**: we accept what resolvers and browsers resolve, not only RFC 952 LDH names:
  ASCII labels of letters, digits, ``-`` and ``_`` (``_dmarc``, ``my_site.blogspot.com``),
  hyphens anywhere, because an event host we cannot read is a missed alert. Labels are
  1–63 characters, the name at most 253. Non-ASCII and ``xn--`` labels go through IDNA
  2008 with UTS 46 mapping (non-transitional, so ``faß.de`` stays distinct from
  ``fass.de``); a label IDNA 2008 forbids (emoji, ``ü_x``) is rejected. Defanged dots
  (``[.]``, ``(.)``, ``{.}``, ``[dot]``) are refanged. An all-numeric top label is an IPv4
  address or an error.
- **url**: ``http``/``https`` (and defanged ``hxxp``/``hxxps``), ``ws``/``wss``, ``ftp`` or
  no scheme; scheme-less values are read as http(s). Both 80 and 443 count as default
  ports for http, https and scheme-less values (the scheme is dropped anyway, so the two
  are not told apart). Backslashes in the path become ``/`` (browsers do the same); tabs
  and newlines are removed. Without a scheme, ``user:pass@host`` reads as the scheme
  ``user:`` and is rejected, as a browser would (``user@host`` is fine). Defanged forms
  (``hxxp``, ``hxxps``, ``h**p``, ``[:]//``, ``[://]``, and in the host ``[.]``, ``(.)``,
  ``{.}``, ``[dot]``, ``[:]``) are refanged in the scheme and host only: a path is kept.
  Prefix matching stays sane: ``evil.com/pay`` is a prefix of the normal form of
  ``https://EVIL.com:443/pay?x=1`` (``evil.com/pay?x=1``), and ``evil.com`` of every URL
  on that host; the matcher must still check that a prefix ends at ``/``, ``?``, ``:`` or
  the end (``evil.com`` is a string prefix of ``evil.com.example.org``).
- **keyword**: see :mod:`engine.core.confusables` for the folding; fewer than 3 characters
  after folding is rejected (it would match nearly every host).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import idna
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult
from phonenumbers.phonenumberutil import _test_number_length

from engine.core.confusables import ASCII_FOLD, MULTI_CHAR_FOLD, load_fold_table
from engine.core.models import IndicatorType
from engine.errors import NormalizationError

__all__ = [
    "fold_confusables",
    "host_to_unicode",
    "normalize",
    "normalize_domain",
    "normalize_keyword",
    "normalize_phone",
    "normalize_phone_prefix",
    "normalize_url",
    "registrable_domain",
    "split_url",
]

# --------------------------------------------------------------------------- phone

PHONE_CACHE_SIZE = 65_536
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
_COUNTRY_CODES = frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
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
_SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _country_branch(cc: int) -> str | None:
    """The regex for the national part of ``+cc…`` that parse() would keep as it is."""
    number = PhoneNumber(country_code=cc)
    runs: list[list[int]] = []  # possible lengths, runs of consecutive ones merged: {9,10}
    for length in range(1, 18):
        number.national_number = int("9" * length)
        if phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE:
            if runs and runs[-1][1] == length - 1:
                runs[-1][1] = length
            else:
                runs.append([length, length])
    if not runs:
        return None
    lengths = [rf"[0-9]{{{a},{b}}}" if a < b else rf"[0-9]{{{a}}}" for a, b in runs]
    region = phonenumbers.region_code_for_country_code(cc)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    trunk = metadata.national_prefix_for_parsing if metadata is not None else None
    # a national number that starts like a trunk prefix may be rewritten by parse(): not here
    guard = f"(?!{trunk})" if trunk else ""
    return f"{guard}(?:{'|'.join(lengths)})"


@functools.cache
def _e164_kept() -> re.Pattern[str]:
    """One regex for every E.164 string that parse() + format(E164) returns unchanged.

    Country codes are prefix-free, so the alternatives form a digit trie (one branch tried per
    digit). Built on first use: it reads the metadata of every country (~0.1 s).
    """
    return re.compile(r"\+" + _e164_digits())


@functools.cache
def _e164_digits() -> str:
    """The regex of ``_e164_kept`` after its ``+``: country code and national number."""
    trie: dict[str, Any] = {}
    for cc in _COUNTRY_CODES:
        node = trie
        for digit in cc:
            node = node.setdefault(digit, {})
        node[""] = _country_branch(int(cc))

    def emit(node: dict[str, Any]) -> str:
        if "" in node:
            return str(node[""]) if node[""] is not None else "(?!)"
        return "(?:" + "|".join(digit + emit(child) for digit, child in sorted(node.items())) + ")"

    return emit(trie)


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
        if _e164_kept().fullmatch(e164) is not None:
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
    if reg not in _SUPPORTED_REGIONS:
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
    if reg == "ZZ" and region and region.upper() not in _SUPPORTED_REGIONS:
        reason = f"{reason} (unknown region {region!r})"
    return None, reason


# ------------------------------------------------------------ phone: national and 00/011 fast path
#
# For a value of ASCII digits and the separators `` ()-.`` only, what _phone_slow answers depends
# on the digit string D and the region's metadata alone: parse() drops that punctuation, no
# extension or RFC 3966 syntax can appear, and D's first digits decide between the region's
# international prefix, 00/011 read as a foreign one, a country code without '+', a trunk prefix,
# or none. Each alternative of a region's regex (``_build_plan``) is one such reading, stated as
# the very tests parse() makes, on the metadata's own patterns embedded as lookaheads: ``(?!P)``
# is "``P.match(D)`` is None", and the atomic group ``(?>P)`` consumes exactly what ``P.match``
# would. The capture is what parse() keeps after the prefixes, and "+" (or "+CC") + capture must
# be what ``_e164_kept`` accepts (a possible length, no trunk prefix a second parse() would drop):
# it is then the E.164 _phone_slow returns. For a national reading the regex checks that itself
# (the branch of ``_e164_kept`` for the region's country code); after an international prefix
# ``_phone_fast`` runs ``_e164_kept``. What no alternative covers (and any value with other
# characters) takes the slow path. tests/unit/core/test_normalize_fastpath.py checks fast against
# slow on every example number of every region in every written form.

_PARSE_MAX_INPUT = 250  # parse() refuses longer strings (TOO_LONG) before reading them
_MAX_DIGITS = 20  # an international prefix (≤ 3) + the longest national number parse() keeps (17)
_PLAN_LIMIT = 1024  # region strings remembered (events carry a region; garbage must not grow this)

_PhonePlan = tuple[re.Pattern[str], dict[str, str]]
_INTERNATIONAL_KINDS = frozenset({"i", "f"})  # readings after an international prefix
_NO_PLAN: _PhonePlan = (re.compile("(?!)"), {})
# what would not mean the same inside a bigger regex, at another position than the start of the
# string parse() matches it against: anchors at the start, word boundaries, back-references and
# conditionals (group numbers shift), lookbehinds, named groups, inline flags
_NOT_EMBEDDABLE = re.compile(r"\^|\\[AbBG0-9]|\(\?(?:P|<|\(|[aiLmsux-])")


def _lengths(metadata: phonenumbers.PhoneMetadata, result: int) -> frozenset[int]:
    """The national number lengths for which phonenumbers' length test answers ``result``."""
    return frozenset(
        n for n in range(1, _MAX_DIGITS + 1) if _test_number_length("9" * n, metadata) == result
    )


def _rest_has_length(lengths: frozenset[int], *, negate: bool = False) -> str:
    """A lookahead: the rest of the string is (is not) digits of one of ``lengths``."""
    runs: list[list[int]] = []
    for n in sorted(lengths):
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    body = "|".join(rf"[0-9]{{{a},{b}}}\Z" for a, b in runs) or "(?!)"
    return f"(?!{body})" if negate else f"(?={body})"


def _build_plan(reg: str, *, kept: bool = True) -> _PhonePlan:
    """The regex of the fast readings of a digit string in region ``reg`` (``ZZ``: none), and
    what goes before each reading's capture. ``kept=False`` leaves out the E.164 conditions on
    the capture (tests check the readings on their own)."""
    anything = "[0-9]+"
    # after an international prefix: country code and number, which _phone_fast then checks
    # with _e164_kept (too big a regex to repeat in every region's)
    international = "[1-9][0-9]{2,}"
    # 00/011 as a foreign prefix: _phone_slow tries 011, then 00 (D cannot start with both);
    # _foreign_idd wants more than two digits after it
    foreign = f"(?:011|00)(?P<f>{international})"
    prefixes = {"f": "+"}
    metadata = None if reg == "ZZ" else phonenumbers.PhoneMetadata.metadata_for_region(reg)
    if metadata is None:
        # parse() reads no national form without a region: only 00/011 can give a number
        return re.compile(foreign), prefixes
    code = metadata.country_code
    assert code is not None  # every region's metadata has one
    cc = str(code)
    main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code)
    )
    assert main is not None  # the region's own country code is known
    national_number = (_country_branch(code) or "(?!)") if kept else anything
    idd = metadata.international_prefix or None
    trunk = metadata.national_prefix_for_parsing or None  # what parse() strips as trunk prefix
    trunk_main = main.national_prefix_for_parsing or None
    transform = bool(metadata.national_prefix_transform_rule)
    general = metadata.general_desc.national_number_pattern if metadata.general_desc else None
    if any(p and _NOT_EMBEDDABLE.search(p) for p in (idd, trunk, trunk_main, general)):
        return _NO_PLAN  # no such pattern in phonenumbers' metadata so far
    # "matches the general pattern" as _match_national_number says it (never, if empty)
    general_here = rf"(?=(?:{general})\Z)" if general else "(?!)"
    possible = _lengths(metadata, ValidationResult.IS_POSSIBLE)
    too_long = _lengths(metadata, ValidationResult.TOO_LONG)
    possible_main = _lengths(main, ValidationResult.IS_POSSIBLE)  # what is_possible() uses
    no_idd = f"(?!{idd})" if idd else ""
    alternatives = []

    # 1. national: no international prefix (the region's, or 00/011 which _foreign_idd would
    #    weigh), no country code in front (or one parse() keeps as part of the number: D matches
    #    the general pattern and is not too long), then the trunk prefix parse() strips, or none
    cc_kept = f"(?:(?!{cc})|{general_here}{_rest_has_length(too_long, negate=True)})"
    if trunk is None:
        national = ""
    elif transform and re.compile(trunk).groups == 0:
        national = f"(?!{trunk})"  # parse() itself would fail on such metadata; never seen
    else:
        # stripped: the rest matches the general pattern (so parse() keeps the strip whatever
        # the whole matched) and has a possible length; with a transform rule, only when the
        # pattern's last group took no part (``{transform}`` is filled in below)
        stripped = general_here + _rest_has_length(possible)
        guard = "{transform}" if transform else ""
        national = f"(?:(?P<tp>(?>{trunk})){guard}{stripped}|(?!{trunk}))"
    alternatives.append(f"{no_idd}(?!00|011){cc_kept}{national}(?P<n>{national_number})")
    prefixes["n"] = "+" + cc

    # 2. the country code without '+' (NANP: 1 + ten digits): parse() takes it off when D is
    #    too long for the region, or matches the general pattern only without it; then no
    #    trunk prefix behind it, for the region's metadata nor (where parse() switches to it)
    #    its main region's
    if general:
        why = rf"(?:{_rest_has_length(too_long)}|(?!(?:{general})\Z)(?={cc}(?:{general})\Z))"
    else:
        why = _rest_has_length(too_long)
    behind = "".join(f"(?!{p})" for p in (trunk, trunk_main) if p)
    # (the first lookahead only fails fast: it is implied by what follows)
    alternatives.append(f"(?={cc}){no_idd}{why}{cc}{behind}(?P<c>{national_number})")
    prefixes["c"] = "+" + cc

    # 3. the region's own international prefix, read as '+' (the next digit not 0, as parse()
    #    wants); when D starts 00/011, _foreign_idd reads the same digits only if the prefix
    #    parse() took is that very 00/011
    if idd:
        own = f"(?>{idd})"
        alternatives.append(
            rf"(?:(?=011){own}(?<=\A011)|(?=00){own}(?<=\A00)|(?!00|011){own})"
            f"(?P<i>{international})"
        )
        prefixes["i"] = "+"

    # 4. 00/011 that is not the region's prefix: the foreign reading wins when the region's own
    #    reading is no possible number: neither D nor D without the trunk prefix has a length
    #    is_possible() accepts (with a transform rule: only when no trunk prefix matches)
    if trunk is None:
        trunk_guard = ""
    elif transform:
        trunk_guard = f"(?!{trunk})"
    else:
        not_possible = _rest_has_length(possible_main, negate=True)
        trunk_guard = f"(?:(?!{trunk})|(?=(?>{trunk}){not_possible}))"
    not_possible_whole = _rest_has_length(possible_main, negate=True)
    alternatives.append(f"(?=0){no_idd}{not_possible_whole}{trunk_guard}{foreign}")

    text = "|".join(f"(?:{a})" for a in alternatives)
    if "{transform}" in text:
        # parse() applies the transform rule when the trunk pattern's last group took part:
        # refuse that case, by a conditional on that group (numbered after the "tp" group)
        last = re.compile(text.replace("{transform}", "")).groupindex["tp"]
        last += re.compile(trunk or "").groups
        text = text.replace("{transform}", f"(?({last})(?!))")
    return re.compile(text), prefixes


_PHONE_PLANS: dict[str, _PhonePlan] = {}


def _phone_plan(region: str) -> _PhonePlan:
    """The plan for ``region`` as _phone_slow reads it, built on first use (~2 ms)."""
    plan = _PHONE_PLANS.get(region)
    if plan is None:
        reg = region.upper() if region else "ZZ"
        if reg not in _SUPPORTED_REGIONS:
            reg = "ZZ"  # as _phone_slow reads it
        plan = _PHONE_PLANS.get(reg)
        if plan is None:  # once per supported region (and ZZ)
            plan = _PHONE_PLANS[reg] = _build_plan(reg)
        if len(_PHONE_PLANS) < _PLAN_LIMIT:
            _PHONE_PLANS[region] = plan  # the spelling seen, to skip the above next time
    return plan


def _phone_fast(value: str, region: str) -> str | None:
    """What ``_phone_slow(value, region)`` returns, for the forms the plans cover; else None."""
    if value.isdigit():
        digits = value
    elif len(value) > _PARSE_MAX_INPUT:
        return None
    else:
        digits = (
            value.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
        ).replace(".", "")
        if not digits.isdigit():
            return None
    if not (2 < len(digits) <= _MAX_DIGITS and digits.isascii()):
        return None  # isdigit() takes other scripts' digits too: they go the slow way
    plan = _PHONE_PLANS.get(region) or _phone_plan(region)
    match = plan[0].fullmatch(digits)
    if match is None:
        return None
    kind = match.lastgroup
    if kind is None:
        return None
    number = plan[1][kind] + match[kind]
    if kind in _INTERNATIONAL_KINDS and _e164_kept().fullmatch(number) is None:
        return None
    return number


_E164_SEPARATORS = str.maketrans("", "", " -.()\u00a0")


def normalize_phone(value: str, region: str = "US") -> str:
    """A phone number in any common written form → E.164 (``+18005550199``).

    ``region`` (ISO 3166 alpha-2) reads national formats: ``(888) 555-0142`` with ``US``,
    ``080 4718 2233`` with ``IN``. Raises :class:`NormalizationError` for withheld,
    empty, garbage and impossible numbers.
    """
    if value[:1] == "+":
        if _e164_kept().fullmatch(value) is not None:
            return value  # already E.164: parse() would give it back unchanged
        # E.164 written with spaces, dashes, dots or brackets: "+1 (800) 555-0199"
        compact = value.translate(_E164_SEPARATORS)
        if compact != value and _e164_kept().fullmatch(compact) is not None:
            return compact
    elif value[:5] == "tel:+":
        # RFC 3966 (``tel:+1-800-555-0199``): parse() reads what follows ``tel:``
        compact = value[4:].translate(_E164_SEPARATORS)
        if _e164_kept().fullmatch(compact) is not None:
            return compact
    else:
        # national and 00/011 forms of the common shapes ((800) 555-0199, 0044 20 …, 020 …)
        fast = _phone_fast(value, region)
        if fast is not None:
            return fast
    e164, reason = _phone_slow(value, region)
    if e164 is None:
        raise NormalizationError("phone", value, reason)
    return e164


_PREFIX_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")
_COUNTRY_CODE_STARTS = frozenset(cc[:n] for cc in _COUNTRY_CODES for n in range(1, len(cc) + 1))


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
        digits[:n] in _COUNTRY_CODES for n in (1, 2, 3)
    ):
        raise NormalizationError("phone_prefix", value, "does not start with a country code")
    return "+" + digits


# --------------------------------------------------------------------------- domain

MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
_ASCII_HOST = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}")
_ASCII_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DEFANGS = (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("(dot)", "."))
# hxxp://, hXXps[:]//, h**p[://], ftp[:]// …: the scheme of a defanged URL
_DEFANGED_SCHEME = re.compile(
    r"\A(?:h(?:xx|\*\*|\[tt\]|tt)p(s?)|([A-Za-z][A-Za-z0-9+.\-]*))(?:\[:\]//|\[://\]|://)",
    re.IGNORECASE,
)


def _refang_scheme(match: re.Match[str]) -> str:
    return f"http{match.group(1)}://" if match.group(2) is None else f"{match.group(2)}://"


_IP_CHARS = frozenset("0123456789.")


def _refang(text: str) -> str:
    for old, new in _DEFANGS:
        if old in text:
            text = text.replace(old, new)
    if "[:]" in text:
        text = text.replace("[:]", ":")
    if "[/]" in text:
        text = text.replace("[/]", "/")
    return text


@functools.lru_cache(maxsize=4096)
def _idn_label(label: str) -> tuple[str | None, str]:
    """A non-ASCII or ``xn--`` label → (its canonical A-label, "") or (None, reason)."""
    try:
        if label.startswith("xn--"):
            label = idna.ulabel(label)
        alabel = idna.alabel(label).decode("ascii")
    except idna.IDNAError as exc:
        return None, f"label {label!r} is not a valid internationalized label: {exc}"
    except UnicodeError as exc:
        return None, f"label {label!r} is not valid punycode: {exc}"
    return alabel, ""


def _hostname(host: str, original: str, kind: str) -> str:
    """The slow, precise path: ``host`` has no port and no brackets."""
    if not host.isascii():
        try:
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except idna.IDNAError as exc:
            raise NormalizationError(kind, original, f"not a valid host name: {exc}") from None
    else:
        host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise NormalizationError(kind, original, "empty host")
    labels = host.split(".")
    out: list[str] = []
    for label in labels:
        if not label:
            raise NormalizationError(
                kind, original, "empty label (two dots in a row, or a leading dot)"
            )
        if label.isascii() and not label.startswith("xn--"):
            bad = next((c for c in label if c not in _ASCII_LABEL_CHARS), None)
            if bad is not None:
                raise NormalizationError(
                    kind,
                    original,
                    f"label {label!r} has a character not allowed in a host name ({bad!r})",
                )
            alabel = label
        else:
            converted, reason = _idn_label(label)
            if converted is None:
                raise NormalizationError(kind, original, reason)
            alabel = converted
        if len(alabel) > MAX_LABEL_LENGTH:
            raise NormalizationError(
                kind,
                original,
                f"label {alabel[:20]!r}… is longer than {MAX_LABEL_LENGTH} characters",
            )
        out.append(alabel)
    result = ".".join(out)
    if len(result) > MAX_HOST_LENGTH:
        raise NormalizationError(kind, original, f"longer than {MAX_HOST_LENGTH} characters")
    return _check_numeric(result, original, kind)


def _check_numeric(host: str, original: str, kind: str) -> str:
    """A host whose top label is all digits must be an IPv4 address."""
    top = host.rpartition(".")[2]
    if not top.isdigit():
        return host
    if _IP_CHARS.issuperset(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        raise NormalizationError(kind, original, "not a valid IPv4 address")
    raise NormalizationError(
        kind,
        original,
        f"top-level label {top!r} is all digits (not a host name nor an IPv4 address)",
    )


def _ipv6(text: str, original: str, kind: str) -> str:
    try:
        address = ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        raise NormalizationError(kind, original, "not a valid IPv6 address") from None
    return f"[{address.compressed}]"


def _host(host: str, original: str, kind: str) -> str:
    """A host without port (IPv6 with or without brackets) → its normal form."""
    if host.isascii():
        lowered = host.lower()
        if lowered.endswith("."):
            lowered = lowered[:-1]
        # fast path: plain LDH(+_) labels, no punycode, no all-digit top label
        if (
            len(lowered) <= MAX_HOST_LENGTH
            and _ASCII_HOST.fullmatch(lowered) is not None
            and "xn--" not in lowered
            and not lowered[-1].isdigit()
        ):
            return lowered
    if host.startswith("["):
        if not host.endswith("]"):
            raise NormalizationError(kind, original, "unclosed '[' in IPv6 address")
        return _ipv6(host[1:-1], original, kind)
    if ":" in host:
        return _ipv6(host, original, kind)
    if "%" in host:
        host = unquote(host)
    return _hostname(host, original, kind)


def normalize_domain(value: str) -> str:
    """A host name → lower-case ASCII (punycode), no trailing dot, no port (see module doc)."""
    text = value.strip()
    if not text:
        raise NormalizationError("domain", value, "empty")
    if "[" in text or "(" in text or "{" in text:
        text = _refang(text)
    if "/" in text:
        raise NormalizationError("domain", value, "has a '/' (a URL, not a domain)")
    if "@" in text:
        raise NormalizationError("domain", value, "has an '@' (an e-mail address or a URL)")
    if text.startswith("*."):
        text = text[2:]  # feeds write wildcards; a domain matches its subdomains anyway
    host = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise NormalizationError("domain", value, "unclosed '[' in IPv6 address")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            raise NormalizationError("domain", value, f"unexpected {rest!r} after the IPv6 address")
    elif ":" in text and text.count(":") == 1:
        host, _, port = text.partition(":")
        if port and not (port.isascii() and port.isdigit()):
            raise NormalizationError("domain", value, f"port {port!r} is not a number")
    return _host(host, value, "domain")


@functools.lru_cache(maxsize=16_384)
def host_to_unicode(host: str) -> str:
    """``xn--`` labels back to Unicode (``xn--bcher-kva.de`` → ``bücher.de``); never raises."""
    if "xn--" not in host:
        return host
    try:
        return ".".join(
            idna.ulabel(label) if label.startswith("xn--") else label for label in host.split(".")
        )
    except (idna.IDNAError, UnicodeError):
        return host


@functools.cache
def _public_suffix_list() -> object:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def registrable_domain(host: str) -> str | None:
    """The domain a registrant owns (``a.b.evil.co.uk`` → ``evil.co.uk``), per the Public
    Suffix List with its private section (``x.blogspot.com`` is its own registrable domain).

    ``host`` is a normalized domain. None for a public suffix itself, an IP address or an
    unreadable host.
    """
    if not host or host.startswith("[") or _IP_CHARS.issuperset(host):
        return None
    psl = _public_suffix_list()
    result = psl.privatesuffix(host.lower().rstrip("."))  # type: ignore[attr-defined]
    return result if isinstance(result, str) else None


# --------------------------------------------------------------------------- url

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_DEFAULT_PORTS: dict[str, frozenset[str]] = {
    "": frozenset({"80", "443"}),
    "http": frozenset({"80", "443"}),
    "https": frozenset({"80", "443"}),
    "ws": frozenset({"80"}),
    "wss": frozenset({"443"}),
    "ftp": frozenset({"21"}),
}
_URL_STRIPPED = str.maketrans("", "", "\t\n\r")
_AUTHORITY_END = re.compile(r"[/?\\]")


# the common shape (http(s) or no scheme, plain host, optional port); anything else (userinfo,
# IPv6, defanged, other schemes, odd characters) takes the general path below
_PLAIN_URL = re.compile(
    r"(?:(https?)://)?([A-Za-z0-9_.-]+)(?::([0-9]{1,5}))?([/?#].*)?", re.IGNORECASE | re.DOTALL
)


def split_url(value: str) -> tuple[str, str]:
    """A URL with or without scheme → (normalized ``host[:port]``, path + ``?query``).

    The second part is ``""`` for a bare host (no path, or only ``/``, and no query).
    """
    plain = _PLAIN_URL.fullmatch(value)
    if plain is not None:
        _, host_text, port, tail = plain.groups()
        if port is not None:
            if int(port) > 65535:
                return _split_url_general(value)  # which says why
            port = str(int(port))
            if port in _DEFAULT_PORTS[""]:
                port = ""
        return _join_url(_host(host_text, value, "url"), port, tail or "")
    return _split_url_general(value)


def _join_url(host: str, port: str | None, tail: str) -> tuple[str, str]:
    host_port = f"{host}:{port}" if port else host
    hash_at = tail.find("#")
    if hash_at >= 0:
        tail = tail[:hash_at]
    query_at = tail.find("?")
    if query_at >= 0:
        path, query = tail[:query_at], tail[query_at + 1 :]
    else:
        path, query = tail, ""
    if "\\" in path:
        path = path.replace("\\", "/")
    if query:
        return host_port, f"{path or '/'}?{query}"
    if path == "/":
        return host_port, ""
    return host_port, path


def _split_url_general(value: str) -> tuple[str, str]:
    text = value.strip()
    if not text:
        raise NormalizationError("url", value, "empty")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_URL_STRIPPED)
    scheme = ""
    # defanged markers are refanged in the scheme and the authority only: a path is kept
    text = _DEFANGED_SCHEME.sub(_refang_scheme, text, count=1)
    match = _SCHEME.match(text)
    if match is not None and not text[match.end() : match.end() + 1].isdigit():
        scheme = match.group(1).lower()
        if scheme not in _DEFAULT_PORTS:
            raise NormalizationError("url", value, f"unsupported scheme {scheme!r}")
        text = text[match.end() :].lstrip("/\\")
    elif text.startswith("//"):
        text = text[2:]
    hash_at = text.find("#")
    if hash_at >= 0:
        text = text[:hash_at]
    end = _AUTHORITY_END.search(text)
    if end is None:
        authority, tail = text, ""
    else:
        authority, tail = text[: end.start()], text[end.start() :]
    at = authority.rfind("@")
    if at >= 0:
        authority = authority[at + 1 :]
    if "[" in authority or "(" in authority or "{" in authority:
        authority = _refang(authority)
    if not authority:
        raise NormalizationError("url", value, "no host")
    port = ""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise NormalizationError("url", value, "unclosed '[' in IPv6 address")
        host_text, rest = authority[: close + 1], authority[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise NormalizationError(
                    "url", value, f"unexpected {rest!r} after the IPv6 address"
                )
            port = rest[1:]
    else:
        host_text, colon, port = authority.rpartition(":")
        if not colon:
            host_text, port = authority, ""
    if port:
        if not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise NormalizationError("url", value, f"port {port!r} is not a number from 0 to 65535")
        port = str(int(port))
        if port in _DEFAULT_PORTS[scheme]:
            port = ""
    return _join_url(_host(host_text, value, "url"), port, tail)


def normalize_url(value: str) -> str:
    """A URL → ``host[:port]`` + path + ``?query`` (see the module doc for what is dropped)."""
    host_port, rest = split_url(value)
    return host_port + rest


# --------------------------------------------------------------------------- keyword

MIN_KEYWORD_LENGTH = 3
_FOLD_TABLE = load_fold_table()
_ASCII_TABLE = bytes(ord(ASCII_FOLD.get(chr(b), chr(b))) if b < 128 else b for b in range(256))


def fold_confusables(text: str) -> str:
    """Look-alike characters folded to the plain ones (``Mіcr0soft`` → ``microsoft``).

    Case-insensitive, idempotent; see :mod:`engine.core.confusables`.
    """
    if text.isascii():
        folded = text.encode("ascii").translate(_ASCII_TABLE).decode("ascii")
    else:
        folded = text.translate(_FOLD_TABLE)
    for old, new in MULTI_CHAR_FOLD:
        if old in folded:
            folded = folded.replace(old, new)
    return folded


def normalize_keyword(value: str) -> str:
    """A keyword → folded, whitespace runs collapsed to one space, ≥ 3 characters."""
    folded = " ".join(fold_confusables(value).split())
    if not folded:
        raise NormalizationError("keyword", value, "empty")
    if len(folded) < MIN_KEYWORD_LENGTH:
        raise NormalizationError(
            "keyword",
            value,
            f"shorter than {MIN_KEYWORD_LENGTH} characters after folding ({folded!r}): "
            "it would match almost every host",
        )
    return folded


# --------------------------------------------------------------------------- dispatch

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
