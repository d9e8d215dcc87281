"""The core imports nothing from Faust, Kafka or Redis (STYLE.md rule 1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[3] / "engine" / "core"
FORBIDDEN = {"faust", "mode", "aiokafka", "kafka", "redis"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_sources_do_not_import_adapters() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 3
    offenders = {str(f.relative_to(CORE)): _imported_roots(f) & FORBIDDEN for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_core_loads_no_adapter_module() -> None:
    """Indirect imports count too: load every core module in a fresh interpreter."""
    parts = [f.relative_to(CORE).with_suffix("").parts for f in CORE.rglob("*.py")]
    modules = [
        ".".join(("engine", "core", *p[: -1 if p[-1] == "__init__" else None])) for p in parts
    ]
    # the per-record processor, the typed records and the time rules are core too
    assert {"engine.core.processor", "engine.core.records", "engine.core.timestamps"} <= set(
        modules
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
