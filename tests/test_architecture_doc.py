"""docs/architecture.md maps every module of server/, tasks/, db/ and common/, in its own words."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("common", "db", "tasks", "server")
HEADER = """# Module map

Generated from each module's docstring by `tests/test_architecture_doc.py`
(`CANVASFLOW_WRITE_DOCS=1 pytest tests/test_architecture_doc.py` rewrites it; the
test fails when a module is missing or its line has changed). The layers run one
way, `server → tasks → db → common`, checked by `lint-imports`; the README's
"Architecture" section follows one event through them.
"""


def module_map() -> str:
    """The map as it should read: one table per package, one row per module."""
    out = [HEADER]
    for package in PACKAGES:
        out.append(f"\n## `{package}/`\n\n| module | what it does |\n|---|---|")
        for path in sorted((ROOT / package).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            out.append(f"| `{path.relative_to(ROOT)}` | {first.replace('|', '/')} |")
    return "\n".join(out) + "\n"


def test_the_module_map_is_current() -> None:
    """Every module is in docs/architecture.md with its docstring's first paragraph."""
    expected = module_map()
    if os.environ.get("CANVASFLOW_WRITE_DOCS"):
        DOC.write_text(expected)
    assert DOC.read_text() == expected, "run CANVASFLOW_WRITE_DOCS=1 pytest " + __file__
