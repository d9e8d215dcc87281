"""The shipped look-alike folding table and how it is built."""

from __future__ import annotations

import json
from importlib import resources

from engine.core import confusables


def test_fold_table_outputs_are_fixed_points() -> None:
    table = confusables.load_fold_table()
    for folded in table.values():
        for char in folded:
            assert ord(char) not in table, (folded, char)
    # the multi-character folds produce letters that fold to themselves
    for _, new in confusables.MULTI_CHAR_FOLD:
        assert ord(new) not in table


def test_fold_table_is_shipped_with_its_provenance() -> None:
    text = resources.files("engine").joinpath("data", confusables.DATA_FILE).read_text("utf-8")
    about = json.loads(text)["about"]
    assert "TR39" in about and "confusables" in about


def test_fold_table_build_matches_tr39_semantics() -> None:
    # a few lines in the format of Unicode's confusables.txt
    tr39 = confusables.parse_confusables(
        [
            "# comment",
            "043E ;\t006F ;\tMA\t# ( о → o ) CYRILLIC SMALL LETTER O → LATIN SMALL LETTER O",
            "006D ;\t0072 006E ;\tMA\t# ( m → rn )",
            "A77A ;\tA779 ;\tMA\t# ( ꝺ → Ꝺ ) upper-case prototype",
        ]
    )
    assert tr39 == {"о": "o", "m": "rn", "ꝺ": "Ꝺ"}
    fold = confusables._fold_char
    assert fold("о", tr39) == "o"
    assert fold("m", tr39) == "m"  # ASCII keeps our own table: rn → m, never m → rn
    assert fold("Ꝺ", tr39) == "ꝺ"  # no cycle between case folding and TR39
    assert fold("É", tr39) == "e"
