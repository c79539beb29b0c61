"""The `canvasflow` command as a new user runs it: `canvasflow dev` on a fresh data directory."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import httpx
import psutil
import pytest
import websockets

from server import embedded
from tests.support.services import free_port


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
    """`canvasflow dev` on a data directory, as a user starts it (PORT, no service URLs)."""

    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        environ.pop("HOST", None)
        environ.update(CANVASFLOW_DATA_DIR=str(data_dir), PORT=str(port), **env)
        self.data_dir = data_dir
        self.base = f"http://{env.get('HOST', '127.0.0.1')}:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "dev"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._open_line = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("canvasflow: open "):
                self._open_line.set()
        self._open_line.set()  # the output ended: whoever waits must look
        self.proc.stdout.close()

    @property
    def output(self) -> str:
        """Everything dev (and its children) printed so far."""
        return "\n".join(self.lines)

    def wait_open_line(self, timeout_s: float = 90) -> str:
        """The start-up line that says which URL to open; fails if dev exits first."""
        assert self._open_line.wait(timeout_s), f"no start-up line after {timeout_s} s"
        opened = [line for line in self.lines if line.startswith("canvasflow: open ")]
        assert opened, f"dev exited ({self.proc.poll()}) without one:\n{self.output[-3000:]}"
        return opened[0]

    def ready(self) -> httpx.Response:
        """Wait for the start-up line, then for /readyz to answer 200."""
        self.wait_open_line()
        return _wait_ready(f"{self.base}/readyz", self.proc, 90)

    def processes(self) -> list[psutil.Process]:
        """dev's children (web, worker, Redis) and the embedded Postgres."""
        found: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        postgres = embedded.postgres_process(self.data_dir)
        return found + ([postgres] if postgres is not None else [])

    def signal(self, sig: int, timeout_s: float = 10) -> str:
        """Send `sig`; dev must exit with 0 within `timeout_s`; returns the output."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"dev still running {timeout_s} s after {sig}") from None
        self._reader.join(5)
        assert self.proc.returncode == 0, self.output[-3000:]
        return self.output

    def stop(self) -> str:
        """Ctrl+C, as a user would; returns the output."""
        return self.signal(signal.SIGINT)

    def kill(self) -> None:
        """Stop dev for sure (test clean-up), whatever it left behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


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
    assert "embedded Postgres and Redis" in dev.wait_open_line()
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


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` still running."""
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _workers_on(data_dir: Path) -> list[psutil.Process]:
    """Running `canvasflow worker` processes whose data directory is `data_dir`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            # cmdline is None for a process that ended while being listed
            cmdline = proc.info["cmdline"] or []
            if cmdline[-2:] == ["server.cli", "worker"] and proc.environ().get(
                "CANVASFLOW_DATA_DIR"
            ) == str(data_dir):
                found.append(proc)
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("sig", "host"),
    [(signal.SIGTERM, None), (signal.SIGINT, None), (signal.SIGHUP, "127.0.0.2")],
    ids=["SIGTERM", "SIGINT", "SIGHUP-HOST"],
)
def test_dev_stops_everything_on_a_signal(tmp_path: Path, sig: int, host: str | None) -> None:
    """SIGTERM, SIGINT or SIGHUP stops web, worker, Redis and Postgres within 10 s, none left.

    PORT picks the port; HOST the address (without it, loopback only); the one
    start-up line names the URL and the data directory, and the embedded
    servers' output is in log files there, not on the terminal.
    """
    port = free_port()
    dev = DevProcess(tmp_path / "data", port, **({"HOST": host} if host else {}))
    try:
        line = dev.wait_open_line()
        assert line.startswith(f"canvasflow: open {dev.base} - data in {tmp_path / 'data'} ")
        assert dev.ready().status_code == 200
        if host is None:
            # dev's default is loopback, whatever web's is
            with socket.socket() as other:
                assert other.connect_ex(("127.0.0.2", port)) != 0
        procs = dev.processes()
        names = sorted(p.name() for p in procs)
        assert names == ["postgres", "python3", "python3", "redis-server"] or names == [
            "postgres",
            "python",
            "python",
            "redis-server",
        ], names
        out = dev.signal(sig)
    finally:
        dev.kill()
    assert _alive(procs) == [], _alive(procs)
    # one readable line before the app's own output; no pgserver chatter
    assert [line for line in out.splitlines() if line.startswith("canvasflow:")] == [line]
    assert "pgserver" not in out and "initdb" not in out
    logs = tmp_path / "data" / "logs"
    assert "initdb" in (logs / "pgserver.log").read_text()
    assert "database system is ready" in (logs / "postgres.log").read_text()
    assert "Redis is starting" in (logs / "redis.log").read_text()
    assert list((tmp_path / "data" / "run").iterdir()) == []


@pytest.mark.timeout(150)
def test_dev_after_sigkill_stops_what_it_left_and_runs_one_worker(tmp_path: Path) -> None:
    """After a SIGKILL of dev, the next dev stops the web, worker, Redis and Postgres it left, and runs one worker."""
    data = tmp_path / "data"
    first = DevProcess(data, free_port())
    try:
        first.ready()
        left = first.processes()
        first.proc.kill()
        first.proc.wait()
        assert len(_alive(left)) == 4  # SIGKILL: nobody stopped them
        second = DevProcess(data, free_port())
        try:
            second.ready()
            [note] = [line for line in second.lines if "earlier canvasflow dev" in line]
            for proc in left:
                assert f"(pid {proc.pid})" in note, (note, proc)
            assert _alive(left) == []
            assert len(_workers_on(data)) == 1
            second.stop()
        finally:
            second.kill()
    finally:
        first.kill()
        for proc in _alive(left):
            proc.kill()


@pytest.mark.timeout(120)
def test_a_second_dev_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    """While dev runs, another dev on its data directory refuses, saying how, and touches nothing of it."""
    data = tmp_path / "data"
    first = DevProcess(data, free_port())
    try:
        first.ready()
        second = DevProcess(data, free_port())
        assert second.proc.wait(30) == 1
        second._reader.join(5)
        assert "canvasflow dev is already running" in second.output, second.output
        assert f"(pid {first.proc.pid})" in second.output and "CANVASFLOW_DATA_DIR" in second.output
        assert len(_workers_on(data)) == 1
        assert httpx.get(f"{first.base}/readyz", timeout=5).status_code == 200
        # the refused dev kept the first one's records: after a SIGKILL of the first, the
        # next dev still finds and stops its web process and worker
        left = first.processes()
        first.proc.kill()
        first.proc.wait()
        third = DevProcess(data, free_port())
        try:
            third.ready()
            assert _alive(left) == [], _alive(left)
            assert len(_workers_on(data)) == 1
            third.stop()
        finally:
            third.kill()
    finally:
        first.kill()


@pytest.mark.parametrize("command", ["dev", "web"])
def test_a_busy_port_names_the_variable_and_the_flag(tmp_path: Path, command: str) -> None:
    """A port in use ends the command at once with a message naming PORT and --port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(CANVASFLOW_DATA_DIR=str(tmp_path / "data"), PORT=str(port), HOST="127.0.0.1")
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr, done.stderr
    assert f"canvasflow {command} --port" in done.stderr and "PORT=" in done.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started
