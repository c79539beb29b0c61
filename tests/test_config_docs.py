"""Every environment variable canvasflow reads is in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: read by the SDKs or by `canvasflow watch`, documented where they are used instead
ELSEWHERE = {"CANVASFLOW_URL", "CANVASFLOW_TOKEN"}


def test_every_variable_read_in_config_is_documented() -> None:
    """common/config.py reads no variable the README's configuration table leaves out."""
    source = (ROOT / "common" / "config.py").read_text()
    read = set(
        re.findall(r'"((?:CANVASFLOW|DATABASE|REDIS|GEMINI|GCS|STORAGE|HOST|PORT)[A-Z_]*)"', source)
    )
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = sorted(read - documented - ELSEWHERE)
    assert not missing, f"README configuration table lacks {missing}"
    assert "watch" in readme and all(v in readme for v in ELSEWHERE)
