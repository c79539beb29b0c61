"""The benchmark command runs end to end at tiny sizes, so it cannot rot.

Figures are not asserted here (the benchmark's own table grades them): only that every
measurement ran or was skipped for a stated reason, and that the JSON is complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT, Services


@pytest.mark.timeout(340)
def test_bench_smoke_runs_every_measurement(services: Services, tmp_path: Path) -> None:
    """`python -m bench --smoke` exits 0 and writes a JSON with all six measurements."""
    env = dict(os.environ, DATABASE_URL=services.admin_url, REDIS_URL=services.redis_url)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=330,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = list(tmp_path.glob("*.json"))
    document = json.loads(result.read_text())
    names = [s["name"] for s in document["sections"]]
    assert [n.split()[0] for n in names] == ["1", "2", "3", "4", "5", "6", "7"], names
    for section in document["sections"]:
        skipped = section["skipped"] or ""
        assert not skipped.startswith("failed"), (section["name"], section["figures"])
        assert section["rows"] or skipped, section["name"]
    env_record = document["environment"]
    assert env_record["cpu_count"] and env_record["python"] and env_record["libraries"]
    assert "uptime" in env_record["load_at_start"]
    # the limits are measured in every run, whatever exists yet
    limits = document["sections"][5]["figures"]["limits"]
    assert limits["arq"]["enqueue"]["enqueues_per_s"] > 0
    assert limits["insert"]["inserts_per_s"] > 0
    broadcast = document["sections"][0]["figures"]["n=20"]["bare"]
    assert broadcast["paced"]["frames_received"] == broadcast["paced"]["frames_expected"]
