"""docs/protocol.md and static/cf-client.js agree with the protocol structs: the code is the source."""

from __future__ import annotations

import re
from pathlib import Path

from common import protocol
from common.protocol.mirror import FATAL_CLOSE

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "protocol.md").read_text()
CLIENT_JS = (ROOT / "static" / "cf-client.js").read_text()


def _section(heading: str) -> str:
    """The text under a `## ` or `### ` heading, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", DOC, re.S | re.M)
    assert match, f"docs/protocol.md has no section {heading!r}"
    return match.group(1)


def _first_column(section: str) -> set[str]:
    """The first cell of every table row (without backticks), header and rule rows left out."""
    cells = re.findall(r"^\| `?([^|`]+?)`? \|", section, re.M)
    return {c for c in cells if c not in ("code", "kind") and not set(c) <= set("-")}


def test_every_event_kind_is_documented_and_no_other() -> None:
    """The kinds docs/protocol.md lists are exactly the structs of common/protocol/events.py."""
    table = _first_column(_section("Event kinds"))
    job_kinds = set(re.findall(r"^- `(job\.[a-z]+)`", _section("Job events"), re.M))
    assert table | job_kinds == set(protocol.KINDS)


def test_every_close_code_is_documented() -> None:
    """The close-code table has one row per CloseCode, and no other."""
    documented = {int(c) for c in _first_column(_section("Close codes"))}
    assert documented == {c.value for c in protocol.CloseCode}


def test_every_error_code_is_documented() -> None:
    """The error-code table has one row per ErrorCode, and no other."""
    assert _first_column(_section("Error codes")) == {c.value for c in protocol.ErrorCode}


def test_the_js_client_knows_the_same_kinds_and_final_closes() -> None:
    """cf-client.js handles only kinds that exist and stops on the same close codes as the mirror."""
    handled = set(re.findall(r'case "([a-z]+\.[a-z]+)":', CLIENT_JS))
    assert handled <= set(protocol.KINDS) | {"job.progress"}
    fatal = dict(re.findall(r"\[(\d{4}), \"([a-z_]+)\"\]", CLIENT_JS))
    assert {int(k): v for k, v in fatal.items()} == FATAL_CLOSE
