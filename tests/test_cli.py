"""The `canvasflow` command as a new user runs it: `canvasflow dev` on a fresh data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"canvasflow dev exited with {proc.returncode}")
        try:
            r = httpx.get(url, timeout=1)
            if r.status_code == 200:
                return r
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout_s} s: {last}")


@pytest.mark.timeout(120)
def test_dev_starts_with_embedded_services(tmp_path: Path) -> None:
    """With no DATABASE_URL / REDIS_URL, `canvasflow dev` starts embedded ones and serves the API."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["CANVASFLOW_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        r = _wait_ready(f"{base}/readyz", proc, 90)
        assert r.json()["checks"] == {"postgres": "ok", "redis": "ok"}
        r = httpx.post(
            f"{base}/api/auth/signup", json={"email": "new@example.com", "password": "first try!"}
        )
        assert r.status_code == 201, r.text
        assert (tmp_path / "data" / "postgres").is_dir()
        assert (tmp_path / "data" / "redis" / "redis.sock").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert b"embedded Postgres" in out and b"embedded Redis" in out
