"""The phone fast path: regexes built from ``phonenumbers`` metadata that answer, without
``phonenumbers.parse``, what :mod:`engine.core.normalize.phone` would for the common forms.

E.164, also written with spaces, dashes, dots or brackets or as ``tel:+…``: one regex
(``e164_kept``) that knows, per country code, the possible lengths and the trunk prefixes
parse() would drop (property tests check it agrees with ``phonenumbers``). National and
``00``/``011`` forms written with digits and `` ()-.`` only (``(800) 555-0199``,
``1 800 555 0199``, ``020 7946 0000`` in GB, ``0044 20 …``): one regex per region
(``_build_plan``) built from that region's metadata (international and trunk prefixes, general
pattern, possible lengths) whose alternatives restate the tests parse() makes; anything it is
not sure of (``0113 …`` in GB, where validity decides) falls through to the slow path. The
regexes are built on first use (~0.1 s for E.164: it reads every country's metadata; ~2 ms per
region).

For a value of ASCII digits and the separators `` ()-.`` only, what ``phone._phone_slow``
answers depends on the digit string D and the region's metadata alone: parse() drops that
punctuation, no extension or RFC 3966 syntax can appear, and D's first digits decide between
the region's international prefix, 00/011 read as a foreign one, a country code without '+', a
trunk prefix, or none. Each alternative of a region's regex (``_build_plan``) is one such
reading, stated as the very tests parse() makes, on the metadata's own patterns embedded as
lookaheads: ``(?!P)`` is "``P.match(D)`` is None", and the atomic group ``(?>P)`` consumes
exactly what ``P.match`` would. The capture is what parse() keeps after the prefixes, and "+"
(or "+CC") + capture must be what ``e164_kept`` accepts (a possible length, no trunk prefix a
second parse() would drop): it is then the E.164 ``_phone_slow`` returns. For a national
reading the regex checks that itself (the branch of ``e164_kept`` for the region's country
code); after an international prefix ``phone_fast`` runs ``e164_kept``. What no alternative
covers (and any value with other characters) takes the slow path.
tests/unit/core/normalize/test_phone_plan.py checks fast against slow on every example number
of every region in every written form.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumber, ValidationResult
from phonenumbers.phonenumberutil import _test_number_length

COUNTRY_CODES = frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


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
def e164_kept() -> re.Pattern[str]:
    """One regex for every E.164 string that parse() + format(E164) returns unchanged.

    Country codes are prefix-free, so the alternatives form a digit trie (one branch tried per
    digit). Built on first use: it reads the metadata of every country (~0.1 s).
    """
    return re.compile(r"\+" + _e164_digits())


@functools.cache
def _e164_digits() -> str:
    """The regex of ``e164_kept`` after its ``+``: country code and national number."""
    trie: dict[str, Any] = {}
    for cc in COUNTRY_CODES:
        node = trie
        for digit in cc:
            node = node.setdefault(digit, {})
        node[""] = _country_branch(int(cc))

    def emit(node: dict[str, Any]) -> str:
        if "" in node:
            return str(node[""]) if node[""] is not None else "(?!)"
        return "(?:" + "|".join(digit + emit(child) for digit, child in sorted(node.items())) + ")"

    return emit(trie)


# ----------------------------------------------- national and 00/011 forms: one regex per region

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
    # after an international prefix: country code and number, which phone_fast then checks
    # with e164_kept (too big a regex to repeat in every region's)
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
        if reg not in SUPPORTED_REGIONS:
            reg = "ZZ"  # as _phone_slow reads it
        plan = _PHONE_PLANS.get(reg)
        if plan is None:  # once per supported region (and ZZ)
            plan = _PHONE_PLANS[reg] = _build_plan(reg)
        if len(_PHONE_PLANS) < _PLAN_LIMIT:
            _PHONE_PLANS[region] = plan  # the spelling seen, to skip the above next time
    return plan


def phone_fast(value: str, region: str) -> str | None:
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
    if kind in _INTERNATIONAL_KINDS and e164_kept().fullmatch(number) is None:
        return None
    return number
