"""What a benchmark run starts and owns: a fresh database, a Redis namespace, fixtures
(users, sessions, projects, nodes) and the canvasflow processes, with their CPU and RSS.

Each run gets its own database (`bench_<hex>`) and namespace (`cfb<hex>`) and removes
both at the end, so it never collides with the test suite or another run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema.sql"


#: an opener that never goes through a proxy from the environment: all traffic is loopback
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback_open(request: urllib.request.Request | str, timeout: float) -> Any:
    """urlopen without proxies."""
    return _LOOPBACK.open(request, timeout=timeout)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass(frozen=True)
class Services:
    """The Postgres database, Redis and namespace of one benchmark run."""

    admin_url: str
    database_url: str
    redis_url: str
    namespace: str
    data_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a canvasflow process (web or worker) of this run."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CANVASFLOW_NAMESPACE=self.namespace,
            CANVASFLOW_DATA_DIR=str(self.data_dir),
            CANVASFLOW_SECRET_KEY="bench-secret",
            # logging every request or frame would measure the logger
            CANVASFLOW_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@contextlib.contextmanager
def fresh_services(admin_url: str, redis_url: str) -> Iterator[Services]:
    """A new database with the schema applied and a new namespace; both removed afterwards."""
    token = secrets.token_hex(4)
    name = f"bench_{token}"
    services = Services(
        admin_url=admin_url,
        database_url=with_database(admin_url, name),
        redis_url=redis_url,
        namespace=f"cfb{token}",
        data_dir=Path(tempfile.mkdtemp(prefix=f"cf-bench-{token}-")),
    )

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(services.database_url)
        try:
            await conn.execute(SCHEMA_PATH.read_text())
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    try:
        yield services
    finally:
        asyncio.run(drop())
        clear_namespace(services)


def clear_namespace(services: Services) -> None:
    """Delete every Redis key of the run's namespace (queued jobs, results, counters)."""
    client = redis.Redis.from_url(services.redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{services.namespace}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
        # arq keeps job and result keys under its own prefixes, keyed by our job ids
        for pattern in ("arq:job:bench-*", "arq:result:bench-*", "arq:in-progress:bench-*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def server_versions(services: Services) -> dict[str, str]:
    """Postgres and Redis server versions, for the environment record."""

    async def pg() -> str:
        conn = await asyncpg.connect(services.database_url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    client = redis.Redis.from_url(services.redis_url)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        redis_version = str(info.get("redis_version", "unknown"))
    finally:
        client.close()
    return {"postgres": asyncio.run(pg()), "redis": redis_version}


@dataclass(frozen=True)
class Seat:
    """What one websocket client needs: the project it watches, a node in it, a token."""

    project_id: str
    node_id: str
    token: str


def hash_token(token: str) -> bytes:
    """How server/auth.py stores a session token (sha256), so fixtures can be bulk-inserted."""
    return hashlib.sha256(token.encode()).digest()


async def make_seats(database_url: str, projects: int, users: int | None = None) -> list[Seat]:
    """`projects` projects, each with one prompt node, owned round-robin by `users` users.

    Rows are bulk-inserted with SQL rather than through the API: sign up costs ~50 ms of
    scrypt per account, and the fixtures are not what is measured.
    """
    users = users or projects
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            user_rows = await conn.fetch(
                "INSERT INTO users (email, password_hash) "
                "SELECT 'bench' || g || '-' || md5(random()::text) || '@example.com', 'x' "
                "FROM generate_series(1, $1) g RETURNING id",
                users,
            )
            user_ids = [r["id"] for r in user_rows]
            tokens = [secrets.token_urlsafe(24) for _ in user_ids]
            await conn.executemany(
                "INSERT INTO sessions (token_hash, user_id, expires_at) "
                "VALUES ($1, $2, now() + interval '1 day')",
                [(hash_token(t), u) for t, u in zip(tokens, user_ids, strict=True)],
            )
            owners = [user_ids[i % users] for i in range(projects)]
            project_rows = await conn.fetch(
                "INSERT INTO projects (owner_id, name) "
                "SELECT o, 'bench' FROM unnest($1::uuid[]) o RETURNING id, owner_id",
                owners,
            )
            node_rows = await conn.fetch(
                "INSERT INTO nodes (project_id, type, data) "
                "SELECT p, 'prompt', '{\"prompt\": \"a benchmark\"}'::jsonb "
                "FROM unnest($1::uuid[]) p RETURNING id, project_id",
                [r["id"] for r in project_rows],
            )
    finally:
        await conn.close()
    token_of = {u: t for u, t in zip(user_ids, tokens, strict=True)}
    node_of = {r["project_id"]: r["id"] for r in node_rows}
    return [
        Seat(project_id=str(r["id"]), node_id=str(node_of[r["id"]]), token=token_of[r["owner_id"]])
        for r in project_rows
    ]


class Meter:
    """CPU seconds and RSS of one process (and its children), read with psutil."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far."""
        t = self.process.cpu_times()
        return float(t.user + t.system)

    def rss_bytes(self) -> int:
        """Resident set size now."""
        return int(self.process.memory_info().rss)


class MeterGroup(Meter):
    """A Meter over several processes (web processes sharing a port): CPU and RSS summed;
    `process` is the first one's (what a profile samples)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(pids[0])
        self.processes = [psutil.Process(pid) for pid in pids]

    def cpu_s(self) -> float:
        """User + system CPU seconds all of them used so far."""
        return float(sum(t.user + t.system for t in (p.cpu_times() for p in self.processes)))

    def rss_bytes(self) -> int:
        """Their resident set sizes, added."""
        return sum(int(p.memory_info().rss) for p in self.processes)

    def connections(self, port: int) -> list[int]:
        """How many established TCP connections each process holds on `port`."""
        return [
            sum(
                1
                for c in p.net_connections("tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
            )
            for p in self.processes
        ]


class CpuWindow:
    """CPU use of a process over a window: `with CpuWindow(meter) as w: ...; w.percent`."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.percent = float("nan")
        self.cpu_s = float("nan")
        self.wall_s = float("nan")

    def __enter__(self) -> CpuWindow:
        self._cpu0 = self.meter.cpu_s()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = self.meter.cpu_s() - self._cpu0
        self.wall_s = time.monotonic() - self._t0
        self.percent = 100 * self.cpu_s / self.wall_s if self.wall_s > 0 else float("nan")


class CpuSplit:
    """Where a machine's CPU went over a window: the server, the load clients, and the
    machine as a whole (other processes included), each in % of one core.

    On a machine shared with its own load generators a latency figure means little without
    this: clients starved of CPU read late however fast the server wrote."""

    def __init__(self, server: Meter, clients: list[Meter]) -> None:
        self.server = CpuWindow(server)
        self.clients = [CpuWindow(m) for m in clients]
        self.figures: dict[str, float] = {}

    def __enter__(self) -> CpuSplit:
        self._machine0 = psutil.cpu_times()
        self.server.__enter__()
        for c in self.clients:
            c.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__()
        for c in self.clients:
            c.__exit__()
        t1, t0 = psutil.cpu_times(), self._machine0
        busy = sum(t1) - sum(t0) - (t1.idle - t0.idle) - (t1.iowait - t0.iowait)
        wall = self.server.wall_s
        cores = psutil.cpu_count() or 1
        self.figures = {
            "server_cpu_percent": round(self.server.percent, 1),
            "server_cpu_s": round(self.server.cpu_s, 4),
            "clients_cpu_percent": round(sum(c.percent for c in self.clients), 1),
            "machine_busy_percent": round(100 * busy / wall, 1) if wall > 0 else float("nan"),
            "machine_cores": cores,
        }


class Proc:
    """A child process with a log file; always reaped (killed if need be) by the run."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.args = args
        self.env = env
        self.name = name
        fd, path = tempfile.mkstemp(prefix=f"cf-bench-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the process (again, after a kill)."""
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args, env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.popen is not None, "start() first"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, sockets reset by the kernel."""
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout_s`."""
        if not self.alive:
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what the process wrote."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class WebProc(Proc):
    """`python -m server.cli web` on a loopback port: the command an operator runs."""

    def __init__(
        self, services: Services, port: int | None = None, reuse_port: bool = False
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        env = services.env(
            CANVASFLOW_PUBLIC_URL=self.base_url, CANVASFLOW_ALLOWED_ORIGINS=self.base_url
        )
        args = [sys.executable, "-m", "server.cli", "web", "--host", "127.0.0.1"]
        if reuse_port:
            args.append("--reuse-port")
        super().__init__([*args, "--port", str(self.port)], env, "web")

    def wait_ready(self, timeout_s: float = 30) -> float:
        """Block until this process listens on its port and /readyz answers 200 there;
        returns the monotonic time it first did. (With --reuse-port another process on
        the port may be the one answering: the listening socket is what proves this one.)"""
        deadline = time.monotonic() + timeout_s
        while not self.listening():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not listening after {timeout_s:g} s")
            time.sleep(0.05)
        return wait_http_ready(self, self.base_url, max(1.0, deadline - time.monotonic()))

    def listening(self) -> bool:
        """Whether this process has a listening socket on its port."""
        try:
            sockets = psutil.Process(self.pid).net_connections("tcp")
        except psutil.Error:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in sockets)


def wait_http_ready(proc: Proc, base_url: str, timeout_s: float = 30) -> float:
    """Block until `base_url`/readyz answers 200; returns the monotonic time it first did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            with _LOOPBACK.open(f"{base_url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name} not ready after {timeout_s} s:\n{proc.log_tail()}")


class WorkerProc(Proc):
    """`arq tasks.worker.WorkerSettings`, as in the Procfile."""

    def __init__(self, services: Services, **extra: str) -> None:
        args = [sys.executable, "-m", "arq", "tasks.worker.WorkerSettings"]
        super().__init__(args, services.env(**extra), "worker")


def raise_open_files_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE toward `wanted` (children inherit it); returns the soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
