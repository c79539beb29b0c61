"""A real arq worker for tests: in the test's event loop (drain or background), or as a process.

`WorkerHarness.drain()` runs a burst worker until the queue is empty, so a
test can act, drain, then assert. `start()`/`stop()` keep a worker running
while the test acts (cancel, progress). `worker_process()` starts the
Procfile's command line for kill tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from arq.connections import ArqRedis, RedisSettings, create_pool
from PIL import Image

from common.config import Settings
from common.keys import queue_name
from db.changes import Store
from tasks.providers.local import LocalRenderer
from tasks.worker import close_context, open_context, worker_options
from tasks.worker_loop import Worker
from tests.support.accounts import Account
from tests.support.api import make_node, make_project
from tests.support.procs import ROOT, WorkerProc
from tests.support.services import Services, replace_settings


class WorkerHarness:
    """arq Workers sharing one job context (Postgres, storage, one LocalRenderer)."""

    def __init__(self, settings: Settings, *, lease_s: float = 5.0, retry_base_s: float = 0.05):
        self.settings = replace_settings(
            settings, job_lease_s=lease_s, job_retry_base_s=retry_base_s
        )
        self.queue: ArqRedis | None = None
        self.ctx: dict[str, Any] = {}
        self._running: tuple[Worker, asyncio.Task[None]] | None = None

    async def __aenter__(self) -> WorkerHarness:
        assert self.settings.redis_url
        self.queue = await create_pool(
            RedisSettings.from_dsn(self.settings.redis_url),
            default_queue_name=queue_name(self.settings.namespace),
        )
        self.ctx = await open_context(self.settings, self.queue)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await close_context(self.ctx)
        if self.queue is not None:
            await self.queue.aclose()

    @property
    def store(self) -> Store:
        """The job context's Postgres and Redis."""
        store: Store = self.ctx["store"]
        return store

    @property
    def renderer(self) -> LocalRenderer:
        """The provider jobs run with (the local renderer in tests)."""
        provider = self.ctx["provider"]
        assert isinstance(provider, LocalRenderer)
        return provider

    def worker(self, *, burst: bool) -> Worker:
        """An arq Worker with the production options, minus signals and crons."""
        assert self.queue is not None
        options = worker_options(self.settings)
        options.update(
            cron_jobs=None,
            redis_settings=None,
            redis_pool=self.queue,
            burst=burst,
            handle_signals=False,
            ctx=self.ctx,
            poll_delay=0.02,
        )
        return Worker(**options)

    async def drain(self) -> Worker:
        """Run every queued job (including deferred retries) to the end; returns the worker."""
        worker = self.worker(burst=True)
        await worker.async_run()
        return worker

    async def start(self) -> Worker:
        """A worker running in the background until `stop()`."""
        assert self._running is None
        worker = self.worker(burst=False)
        self._running = (worker, asyncio.create_task(worker.async_run()))
        return worker

    async def stop(self) -> None:
        """Stop the background worker and the jobs it runs (arq hands them back to the queue)."""
        if self._running is None:
            return
        worker, task = self._running
        self._running = None
        task.cancel()
        running = list(worker.tasks.values())
        for job_task in running:
            job_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.gather(*running, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[WorkerHarness]:
    """A WorkerHarness (`options` as its own) whose worker runs in the background for the block."""
    async with WorkerHarness(settings, **options) as harness:
        await harness.start()
        yield harness


class WorkerProcess(WorkerProc):
    """The Procfile's worker as a child process, its log file closed in this process once started."""

    def start(self) -> WorkerProcess:
        """Start the process (again), appending its output to the log file."""
        with self.log_path.open("ab") as log:
            # the child has its own copy of the descriptor; ours must not leak
            self.popen = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        return self


def worker_process(services: Services, **env: str) -> WorkerProcess:
    """`canvasflow worker` with this run's database, Redis and data.

    The lease is 2 s, so a killed worker's job is taken over 2 s after the kill.
    """
    env.setdefault("CANVASFLOW_JOB_LEASE_S", "2")
    return WorkerProcess(services, **env)


async def wait_for_job(
    client: httpx.AsyncClient,
    who: Account,
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout_s: float = 45,
) -> dict[str, Any]:
    """Poll GET /api/ai/jobs/{id} until its status is one of `statuses`; returns the job."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        r = await client.get(f"/api/ai/jobs/{job_id}", headers=who.headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["status"] in statuses:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job still {job['status']} after {timeout_s} s: {job}")
        await asyncio.sleep(0.05)


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (640, 360),
    color: tuple[int, int, int] = (200, 30, 30),
) -> bytes:
    """An image file of one colour, encoded as `fmt`."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


async def upload_image(
    client: httpx.AsyncClient,
    who: Account,
    project_id: str,
    data: bytes,
    *,
    filename: str = "picture.png",
    node_id: str | None = None,
) -> httpx.Response:
    """POST the image to the project's uploads as multipart field `file`."""
    fields = {"node_id": node_id} if node_id is not None else None
    return await client.post(
        f"/api/projects/{project_id}/uploads",
        files={"file": (filename, data, "application/octet-stream")},
        data=fields,
        headers=who.headers,
    )


def video_body(node_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid generate-video body (the cheapest clip: 720p, 4 s)."""
    body: dict[str, Any] = {
        "node_id": node_id,
        "prompt": "a paper boat sails down a rainy street",
        "resolution": "720p",
        "duration": 4,
        "aspect_ratio": "16:9",
    }
    body.update(overrides)
    return body


async def submit_job(client: httpx.AsyncClient, who: Account, **overrides: Any) -> dict[str, Any]:
    """A new project with a video node and a submitted job; returns the job."""
    pid = await make_project(client, who)
    node = await make_node(client, who, pid, "video")
    r = await client.post(
        "/api/ai/generate-video", json=video_body(node["id"], **overrides), headers=who.headers
    )
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


async def job_row(store: Store, job_id: str) -> dict[str, Any]:
    """The job's row."""
    row = await store.db.fetch_one("SELECT * FROM jobs WHERE id = :id", {"id": uuid.UUID(job_id)})
    assert row is not None
    return dict(row._mapping)
