"""The soak runs end to end at a tiny size, so it cannot rot (its figures are graded by itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT, Services


@pytest.mark.timeout(150)
def test_soak_runs_and_reports_every_figure(services: Services, tmp_path: Path) -> None:
    """`python -m bench.soak --duration-s 8` exits 0 with no leaked session and no 5xx."""
    out = tmp_path / "soak.json"
    env = dict(os.environ, DATABASE_URL=services.admin_url, REDIS_URL=services.redis_url)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration-s", "8", "--clients", "10",
         "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "leaked Postgres sessions" in proc.stdout
    result = json.loads(out.read_text())
    assert result["leaked_sessions"] == [] and result["server_errors"] == 0
    assert sum(result["churn"].values()) > 0 and result["http"]
