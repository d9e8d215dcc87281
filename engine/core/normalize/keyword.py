"""Keywords → look-alikes folded, whitespace runs collapsed, at least 3 characters.

See :mod:`engine.core.confusables` for the folding; fewer than 3 characters after folding is
rejected (it would match nearly every host).
"""

from __future__ import annotations

from engine.core.confusables import ASCII_FOLD, MULTI_CHAR_FOLD, load_fold_table
from engine.errors import NormalizationError

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
