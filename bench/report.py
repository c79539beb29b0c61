"""The table on stdout and the JSON file: every figure beside its limit and target."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PASS, MISS, INFO, NA = "PASS", "MISS", "", "n/a"


@dataclass
class Row:
    """One line of the table."""

    section: str
    figure: str
    value: str
    limit: str = ""
    target: str = ""
    verdict: str = INFO


@dataclass
class Section:
    """One measurement: its table rows and its full figures for the JSON."""

    name: str
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def row(
        self, figure: str, value: str, limit: str = "", target: str = "", verdict: str = INFO
    ) -> None:
        """Add a row."""
        self.rows.append(Row(self.name, figure, value, limit, target, verdict))


def verdict(ok: bool | None) -> str:
    """PASS / MISS, or n/a when the figure could not be measured."""
    if ok is None:
        return NA
    return PASS if ok else MISS


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A number for the table, `-` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 10_000:
        return f"{value:,.0f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def table(sections: list[Section]) -> str:
    """A fixed-width table of every row."""
    header = Row("measurement", "figure", "value", "limit (same run)", "target", "verdict")
    rows = [header]
    for s in sections:
        if s.skipped:
            rows.append(Row(s.name, "skipped", s.skipped, "", "", NA))
        rows.extend(s.rows)
    cols = ["section", "figure", "value", "limit", "target", "verdict"]
    widths = {c: max(len(str(getattr(r, c))) for r in rows) for c in cols}
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(str(getattr(r, c)).ljust(widths[c]) for c in cols).rstrip())
        if i == 0:
            lines.append("  ".join("-" * widths[c] for c in cols))
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, document: dict[str, Any], sections: list[Section]) -> None:
    """The run's JSON: environment, sizes, and each section's rows and figures."""
    document = dict(document)
    document["sections"] = [
        {
            "name": s.name,
            "skipped": s.skipped,
            "rows": [asdict(r) for r in s.rows],
            "figures": s.figures,
        }
        for s in sections
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(document), indent=2, default=str) + "\n")


def markdown(document: dict[str, Any]) -> str:
    """A run's JSON as the README's table and environment line (so the two cannot differ)."""
    lines = [
        "| measurement | figure | value | limit (same run) | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for s in document["sections"]:
        if s["skipped"]:
            lines.append(f"| {s['name']} | skipped | {s['skipped']} | | | {NA} |")
        for r in s["rows"]:
            cells = [r[c] for c in ("section", "figure", "value", "limit", "target", "verdict")]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    env = document["environment"]
    libs, servers = env["libraries"], env["servers"]
    start, end = env["load_at_start"], env["load_at_end"]
    lines += [
        "",
        f"Measured {document['created_at']} at commit `{env['git_commit']}`: "
        f"{env['cpu_count']} x {env['cpu_model']}, {env['platform']}, Python {env['python']}, "
        f"uvicorn {libs['uvicorn']}, websockets {libs['websockets']}, uvloop {libs['uvloop']}, "
        f"Postgres {servers['postgres']}, Redis {servers['redis']}; load average "
        f"{start['load_1m']}/{start['load_5m']}/{start['load_15m']} at start, "
        f"{end['load_1m']} at end; {document['elapsed_s']:.0f} s in all.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
