"""The shipped look-alike folding table and how it is built."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

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


def test_regenerating_writes_only_where_it_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # computing the real table scans every code point; the file handling is what is tested here
    monkeypatch.setattr(confusables, "build_fold_table", lambda tr39: {"о": "o", **tr39})
    source = tmp_path / "confusables.txt"
    source.write_text("# Version: 13.0.0\n006D ;\t0072 006E ;\tMA\t# ( m → rn )\n", "utf-8")
    out = tmp_path / "out" / "fold.json"
    shipped = resources.files("engine").joinpath("data", confusables.DATA_FILE).read_bytes()
    assert confusables.main([str(source), str(out)]) == 0
    written = json.loads(out.read_text("utf-8"))
    assert written["fold"] == {"m": "rn", "о": "o"}
    assert "13.0.0" in written["about"]
    assert resources.files("engine").joinpath("data", confusables.DATA_FILE).read_bytes() == shipped
    assert confusables.main([str(source)]) == 2  # no output path: usage, nothing written
