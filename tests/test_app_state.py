"""The web process's resources are read through server/state.py's typed AppState only."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: `app.state.<name>` reads that are not the typed AppState (`canvasflow`) or openapi's cache
_UNTYPED = re.compile(r"\bapp\.state\.(?!canvasflow\b|openapi\b)(\w+)")


def test_no_module_reads_the_untyped_app_state() -> None:
    """Starlette's `app.state.X` is Any to mypy: a renamed resource would only fail at run time."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: app.state.{m.group(1)}"
        for path in sorted([*(ROOT / "server").rglob("*.py"), *(ROOT / "tests").rglob("*.py")])
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for m in _UNTYPED.finditer(line)
        if path.name != "test_app_state.py"
    ]
    assert not found, "use server.state.app_state(request) instead:\n" + "\n".join(found)
