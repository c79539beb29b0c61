"""The `canvasflow` command as a new user runs it: `canvasflow dev` on a fresh data directory."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest
import websockets

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


def _level(line: str) -> str | None:
    """The level of a JSON log line, None for any other output."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("level") if isinstance(record, dict) else None


class DevProcess:
    """`canvasflow dev` on a data directory, stopped with Ctrl-C as a user would."""

    def __init__(self, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["CANVASFLOW_DATA_DIR"] = str(data_dir)
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "dev", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> httpx.Response:
        """Wait for /readyz to answer 200."""
        return _wait_ready(f"{self.base}/readyz", self.proc, 90)

    def stop(self) -> str:
        """SIGINT, then the output; the exit status must be 0."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        text = out.decode(errors="replace")
        assert self.proc.returncode == 0, text[-3000:]
        return text


async def _generate_and_watch(base: str, token: str, node_id: str, project_id: str) -> list[str]:
    """Subscribe over /ws, submit a generation, return the event kinds seen until completion."""
    kinds: list[str] = []
    ws_url = base.replace("http://", "ws://") + "/ws"
    auth = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "subscribe", "project_id": project_id}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "snapshot", first
        seq = first["seq"]
        async with httpx.AsyncClient(base_url=base, headers=auth) as http:
            r = await http.post(
                "/api/ai/generate-video",
                json={
                    "node_id": node_id,
                    "prompt": "A paper boat on a rainy street",
                    "resolution": "720p",
                    "duration": 4,
                    "aspect_ratio": "16:9",
                },
            )
            assert r.status_code == 202, r.text
        while "job.completed" not in kinds:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] == "event":
                # live events arrive in order, one seq after another
                assert frame["seq"] == seq + 1, (frame["seq"], seq)
                seq = frame["seq"]
                kinds.append(frame["kind"])
            assert frame["type"] != "error", frame
    return kinds


@pytest.mark.timeout(240)
def test_new_user_makes_a_video_and_it_survives_a_restart(tmp_path: Path) -> None:
    """The README's run command as a new user tries it, with no DATABASE_URL / REDIS_URL.

    Embedded Postgres and Redis start; sign up, a video node, generate: the
    websocket shows the job live to completion, the video URL serves a playable
    MP4; after stopping and starting everything again the job and node still
    read completed and a freshly signed URL serves the same video.
    """
    with contextlib.ExitStack() as stack:
        _new_user_flow(tmp_path / "data", free_port(), stack)


def _new_user_flow(data: Path, port: int, stack: contextlib.ExitStack) -> None:
    dev = DevProcess(data, port)
    try:
        assert dev.ready().json()["checks"] == {"postgres": "ok", "redis": "ok"}
        assert (data / "postgres").is_dir()
        assert (data / "redis" / "redis.sock").exists()
        http = stack.enter_context(httpx.Client(base_url=dev.base, timeout=10))
        r = http.post(
            "/api/auth/signup", json={"email": "new@example.com", "password": "first try!"}
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        http.cookies.clear()  # a non-browser client: the Bearer token alone
        http.headers["Authorization"] = f"Bearer {token}"
        project = http.post("/api/projects", json={"name": "first"}).json()
        node = http.post(
            f"/api/projects/{project['id']}/nodes", json={"type": "video", "x": 0, "y": 0}
        ).json()
        kinds = asyncio.run(_generate_and_watch(dev.base, token, node["id"], project["id"]))
        assert kinds[0] == "job.created" and kinds[-1] == "job.completed", kinds
        job = http.get(f"/api/ai/nodes/{node['id']}/jobs/latest").json()
        assert job["status"] == "completed", job
        video = httpx.get(job["result"]["video_url"], timeout=10)
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(video.content), mode="r") as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.width, stream.height) == (1280, 720)
            assert container.duration is not None and container.duration / 1e6 >= 3.9
    finally:
        out = dev.stop()
    assert "embedded Postgres" in out and "embedded Redis" in out
    # a healthy run says nothing alarming (a hub that cannot reach Redis still
    # delivers through its Postgres sweep, but warns each time it retries)
    alarms = [line for line in out.splitlines() if _level(line) in ("warning", "error", "critical")]
    assert not alarms, alarms

    # every process stopped; start them all again on the same data directory
    dev = DevProcess(data, port)
    try:
        dev.ready()
        again = http.get(f"/api/ai/jobs/{job['job_id']}").json()
        assert again["status"] == "completed" and again["progress"] == 1.0, again
        assert again["result"]["video_key"] == job["result"]["video_key"]
        nodes = http.get(f"/api/projects/{project['id']}/nodes").json()
        [saved] = [n for n in nodes if n["id"] == node["id"]]
        assert saved["status"] == "completed"
        assert saved["data"]["video_key"] == job["result"]["video_key"]
        replay = httpx.get(again["result"]["video_url"], timeout=10)
        assert replay.status_code == 200 and replay.content == video.content
    finally:
        dev.stop()
