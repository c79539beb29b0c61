"""Fault drills with real processes: kill the worker, kill the web process, restart Redis, restart Postgres.

A fresh rig for each drill: a private Postgres cluster, a private Redis, one
`canvasflow web` and one worker, all restartable, so that a drill that fails
leaves nothing broken to the next. Every wait is for a condition (the fault
seen by /readyz, an event missed while the web process was down), never for a
fixed time. Each drill runs jobs and
keeps websocket clients connected (reconnecting and resuming with `since`, as
the protocol tells clients to), inflicts its fault, then checks the same
promises: every job ends, every client's model equals Postgres with no gap,
no video is generated twice, and every process serves again on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from common import protocol
from tests.support.accounts import Account, sign_up
from tests.support.procs import PostgresServer, RedisServer, WebProc, WorkerProc
from tests.support.services import Services
from tests.support.workers import video_body
from tests.support.ws import Model, WsClient

FINAL = ("completed", "failed", "cancelled")


class Worker(WorkerProc):
    """The Procfile's worker, logging at info (each render it starts is a log line)."""

    def __init__(self, services: Services) -> None:
        super().__init__(
            services,
            CANVASFLOW_LOG_LEVEL="info",
            CANVASFLOW_JOB_LEASE_S="2",
            CANVASFLOW_JOB_RETRY_BASE_S="0.3",
        )

    def renders(self, job_id: str) -> int:
        """How many times this worker (over all its lives) started a render of the job."""
        return self.log().count(f"job {job_id}: submitted to")


@dataclass
class Rig:
    """The processes and services of the drills."""

    services: Services
    postgres: PostgresServer
    redis: RedisServer
    web: WebProc
    worker: Worker


@pytest.fixture
def rig() -> Iterator[Rig]:
    """Private Postgres and Redis, a web process and a worker, for one drill."""
    postgres = PostgresServer().start()
    redis_server = RedisServer().start()
    services = Services(
        database_url=postgres.url,
        admin_url=postgres.url,
        redis_url=redis_server.url,
        namespace=f"drill{secrets.token_hex(3)}",
        data_dir=Path(tempfile.mkdtemp(prefix="cf-drill-")),
    )
    web = WebProc(services)
    worker = Worker(services)
    try:
        web.start()
        worker.start()
        web.wait_ready()
        yield Rig(services, postgres, redis_server, web, worker)
    finally:
        web.stop()
        worker.stop()
        redis_server.stop()
        postgres.destroy()


# -- a client that follows a project through anything ------------------------------


class CanvasModel(Model):
    """A Model whose state includes the jobs, so followers are compared job for job too."""

    with_jobs = True


@dataclass
class Follower:
    """A websocket client that reconnects with backoff and resumes with `since`, as docs/protocol.md says."""

    base_url: str
    token: str
    project_id: str
    model: CanvasModel = field(default_factory=CanvasModel)
    reconnects: int = 0
    closes: list[int | None] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow in the background."""
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop following."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        delay_s = 0.05
        while True:
            try:
                client = await WsClient.open(self.base_url, self.token, open_timeout=2)
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 0.5)
                continue
            delay_s = 0.05
            try:
                await client.subscribe(self.project_id, self.model.seq)
                while True:
                    message = await client.recv(timeout_s=3600)
                    gaps = len(self.model.gaps)
                    self.model.apply(message)
                    if isinstance(message, protocol.Error):
                        # the server could not serve the subscribe now (Postgres away): again
                        await asyncio.sleep(0.2)
                        await client.subscribe(self.project_id, self.model.seq)
                    elif len(self.model.gaps) > gaps:
                        await client.subscribe(self.project_id, self.model.seq)
            except websockets.ConnectionClosed as exc:
                self.closes.append(None if exc.rcvd is None else exc.rcvd.code)
                self.reconnects += 1
            finally:
                with contextlib.suppress(Exception):
                    await client.close()


# -- the drill ---------------------------------------------------------------------


async def project_seq(rig: Rig, project_id: str) -> int:
    """projects.seq, straight from Postgres."""
    conn = await asyncpg.connect(rig.services.database_url)
    try:
        return int(
            await conn.fetchval("SELECT seq FROM projects WHERE id = $1", uuid.UUID(project_id))
        )
    finally:
        await conn.close()


async def rows(rig: Rig, sql: str, *args: Any) -> list[asyncpg.Record]:
    """A query against the drill's Postgres, retried while it is restarting."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = await asyncpg.connect(rig.services.database_url, timeout=2)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, rig: Rig | None = None
) -> float:
    """Poll `check` until true; returns the seconds it took. On a timeout the assertion
    carries the ends of the processes' logs, so a failure in CI says what they did."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started >= timeout_s:
            logs = ""
            if rig is not None:
                logs = f"\n--- worker log ---\n{rig.worker.log()[-4000:]}"
                logs += f"\n--- web log ---\n{rig.web.log()[-2000:]}"
            raise AssertionError(f"{what}: not after {timeout_s} s{logs}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def readiness(rig: Rig) -> dict[str, Any] | None:
    """The web process's /readyz checks, or None if it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            checks: dict[str, Any] = (await http.get(f"{rig.web.base_url}/readyz")).json()["checks"]
            return checks
    except (httpx.HTTPError, ValueError, KeyError):
        return None


async def outage_seen(rig: Rig, check: str) -> None:
    """Wait until the web process's /readyz reports `check` failing."""

    async def seen() -> bool:
        checks = await readiness(rig)
        return checks is not None and checks.get(check) != "ok"

    await wait_until(seen, 30, f"/readyz reporting {check} down", rig)


@dataclass
class Scene:
    """What a drill set up: an account, a project with video nodes, jobs and followers."""

    account: Account
    project_id: str
    nodes: list[str]
    jobs: list[str]
    followers: list[Follower]
    #: where the worker's log stood when the scene began
    log_from: int


@contextlib.asynccontextmanager
async def scene(rig: Rig, jobs: int = 2) -> AsyncIterator[Scene]:
    """A project with `jobs` renders under way and two followers, torn down afterwards."""
    log_from = len(rig.worker.log())
    async with httpx.AsyncClient(base_url=rig.web.base_url, timeout=10) as http:
        account = await sign_up(http)
        r = await http.post("/api/projects", json={"name": "drill"}, headers=account.headers)
        project_id = r.json()["id"]
        nodes = []
        for i in range(jobs + 1):
            r = await http.post(
                f"/api/projects/{project_id}/nodes",
                json={"type": "video", "x": i * 100},
                headers=account.headers,
            )
            nodes.append(r.json()["id"])
        followers = [Follower(rig.web.base_url, account.token, project_id) for _ in range(2)]
        for f in followers:
            f.start()
        job_ids = []
        for node in nodes[:jobs]:
            r = await http.post(
                "/api/ai/generate-video", json=video_body(node, duration=8), headers=account.headers
            )
            assert r.status_code == 202, r.text
            job_ids.append(r.json()["job_id"])
    s = Scene(account, project_id, nodes, job_ids, followers, log_from)
    try:
        yield s
    finally:
        for f in followers:
            await f.stop()


async def rendering(rig: Rig, s: Scene) -> None:
    """Wait until every job of the scene is rendering (progress above 0)."""

    async def check() -> bool:
        found = await rows(rig, "SELECT progress FROM jobs WHERE id = ANY($1::uuid[])", s.jobs)
        return all(r["progress"] > 0 for r in found)

    await wait_until(check, 60, "jobs rendering", rig)


async def settle(rig: Rig, s: Scene, max_renders: dict[str, int] | None = None) -> dict[str, float]:
    """Check every promise after a fault; returns how long each recovery step took."""
    timings: dict[str, float] = {}

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{rig.web.base_url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    timings["readyz"] = await wait_until(ready, 30, "web /readyz 200", rig)

    async def jobs_final() -> bool:
        found = await rows(rig, "SELECT status FROM jobs WHERE id = ANY($1::uuid[])", s.jobs)
        return all(r["status"] in FINAL for r in found)

    timings["jobs_final"] = await wait_until(jobs_final, 60, "jobs final", rig)
    # the worker picks up new work: one more job, on the spare node, start to finish
    async with httpx.AsyncClient(base_url=rig.web.base_url, timeout=10) as http:
        r = await http.post(
            "/api/ai/generate-video",
            json=video_body(s.nodes[-1]),
            headers=s.account.headers,
        )
        assert r.status_code == 202, r.text
    fresh = r.json()["job_id"]
    started = time.monotonic()

    async def fresh_done() -> bool:
        found = await rows(rig, "SELECT status FROM jobs WHERE id = $1", uuid.UUID(fresh))
        return found[0]["status"] in FINAL

    await wait_until(fresh_done, 60, "a job submitted after the fault", rig)
    timings["new_job"] = time.monotonic() - started
    all_jobs = [*s.jobs, fresh]
    # no job stuck, and each completed once: one job.completed event, one render (or as allowed)
    found = await rows(
        rig,
        "SELECT id::text, status, attempts FROM jobs WHERE project_id = $1",
        uuid.UUID(s.project_id),
    )
    assert {r["id"]: r["status"] for r in found} == {j: "completed" for j in all_jobs}, found
    events = await rows(
        rig,
        "SELECT data->'job'->>'job_id' AS job, kind FROM events WHERE project_id = $1 "
        "AND kind = 'job.completed'",
        uuid.UUID(s.project_id),
    )
    assert sorted(e["job"] for e in events) == sorted(all_jobs)
    for job in all_jobs:
        allowed = (max_renders or {}).get(job, 1)
        renders = rig.worker.renders(job)
        assert 1 <= renders <= allowed, f"job {job} rendered {renders} times"
    # recovered by the jobs' own retries and leases: arq never dropped one as failed (which
    # would leave it to the sweeper's next pass, up to 30 s later)
    log = rig.worker.log()[s.log_from :]
    assert ":generate_video failed" not in log and "sweeper: taken_over" not in log
    # every follower caught up with Postgres, gap-free, with the state a fresh snapshot shows
    seq = await project_seq(rig, s.project_id)

    async def caught_up() -> bool:
        return all(f.model.seq == seq for f in s.followers)

    timings["clients"] = await wait_until(caught_up, 30, f"followers at seq {seq}")
    for f in s.followers:
        assert f.model.gaps == [], f.model.gaps
    fresh_client = await WsClient.open(rig.web.base_url, s.account.token)
    try:
        await fresh_client.subscribe(s.project_id)
        truth = CanvasModel()
        truth.apply(await fresh_client.expect(protocol.Snapshot))
    finally:
        await fresh_client.close()
    for f in s.followers:
        assert f.model.state() == truth.state()
    return timings


# -- the drills ---------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_worker_sigkill_mid_render(rig: Rig) -> None:
    """SIGKILL the worker mid-render; restarted, it takes both jobs over and completes each once."""
    async with scene(rig) as s:
        await rendering(rig, s)
        rig.worker.kill()
        killed_at = time.monotonic()
        rig.worker.start()  # the supervisor's restart (systemd Restart=always)
        timings = await settle(rig, s, max_renders={j: 2 for j in s.jobs})
        found = await rows(rig, "SELECT attempts FROM jobs WHERE id = ANY($1::uuid[])", s.jobs)
        assert [r["attempts"] for r in found] == [2, 2]
        print(f"worker SIGKILL: recovered in {time.monotonic() - killed_at:.1f} s; {timings}")


@pytest.mark.timeout(120)
async def test_web_sigkill_clients_resume_on_the_restarted_web(rig: Rig) -> None:
    """SIGKILL the web process mid-render; restarted, clients reconnect and resume with since, losing nothing."""
    async with scene(rig) as s:
        await rendering(rig, s)
        for f in s.followers:
            assert f.model.seq is not None
        rig.web.kill()
        killed_at = time.monotonic()
        missed = max(f.model.seq or 0 for f in s.followers)

        async def event_missed() -> bool:
            return await project_seq(rig, s.project_id) > missed

        # the worker goes on changing the project while no hub listens: clients must resume
        await wait_until(event_missed, 60, "a change made while the web process was down", rig)
        rig.web.start()
        timings = await settle(rig, s)
        for f in s.followers:
            assert f.reconnects >= 1 and f.model.snapshots == 1  # resumed, never resnapshotted
        print(f"web SIGKILL: recovered in {time.monotonic() - killed_at:.1f} s; {timings}")


@pytest.mark.timeout(120)
async def test_redis_restart_mid_render(rig: Rig) -> None:
    """Restart Redis (it comes back empty) mid-render: jobs finish once, clients fill from the log."""
    async with scene(rig) as s:
        await rendering(rig, s)
        rig.redis.stop()
        stopped_at = time.monotonic()
        await outage_seen(rig, "redis")
        rig.redis.start()
        timings = await settle(rig, s)
        print(f"Redis restart: recovered in {time.monotonic() - stopped_at:.1f} s; {timings}")
        assert rig.worker.alive and rig.web.alive


@pytest.mark.timeout(120)
async def test_postgres_restart_mid_render(rig: Rig) -> None:
    """Restart Postgres mid-render: jobs finish once, clients resume, web and worker reconnect."""
    async with scene(rig) as s:
        await rendering(rig, s)
        rig.postgres.stop("fast")
        stopped_at = time.monotonic()
        await outage_seen(rig, "postgres")
        rig.postgres.start()
        timings = await settle(rig, s)
        print(f"Postgres restart: recovered in {time.monotonic() - stopped_at:.1f} s; {timings}")
        assert rig.worker.alive and rig.web.alive
