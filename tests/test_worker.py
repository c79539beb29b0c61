"""The worker's job life cycle: retries, permanent failures, deadlines, resume, takeover after a kill."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from arq.constants import in_progress_key_prefix

from common.config import ConfigError, load_settings
from db.changes import Store
from tasks.providers.base import (
    PollResult,
    ProviderError,
    QuotaExceeded,
    SafetyBlocked,
    VideoOutput,
    VideoRequest,
)
from tasks.providers.local import LocalRenderer
from tasks.worker import worker_options
from tests.support.accounts import Account
from tests.support.services import Services, settings_for
from tests.support.workers import (
    WorkerHarness,
    job_row,
    running_worker,
    submit_job,
    wait_for_job,
    worker_process,
)


class ScriptedProvider:
    """A remote provider's fake: renders locally, but fails submits as scripted (429, safety...)."""

    name = "scripted"
    poll_interval_s = 0.1

    def __init__(self, renderer: LocalRenderer, submit_errors: list[ProviderError]) -> None:
        self.renderer = renderer
        self.submit_errors = submit_errors
        self.submit_times: list[float] = []

    def check(self, request: VideoRequest) -> None:
        """Whatever the local renderer accepts."""
        self.renderer.check(request)

    async def submit(self, request: VideoRequest) -> str:
        """The next scripted error, or a real render once the script is used up."""
        self.submit_times.append(time.monotonic())
        if self.submit_errors:
            raise self.submit_errors.pop(0)
        return await self.renderer.submit(request)

    async def poll(self, operation: str) -> PollResult:
        """The local render's state."""
        return await self.renderer.poll(operation)

    async def download(self, operation: str, dest_dir: Path) -> list[VideoOutput]:
        """The local render's files."""
        return await self.renderer.download(operation, dest_dir)


async def kinds_of(store: Store, project_id: str) -> list[str]:
    """Kinds of the project's job events, in seq order."""
    rows = await store.db.fetch_all(
        "SELECT kind FROM events WHERE project_id = :p AND kind LIKE 'job.%' ORDER BY seq",
        {"p": uuid.UUID(project_id)},
    )
    return [r["kind"] for r in rows]


async def node_of(client: httpx.AsyncClient, who: Account, job: dict[str, Any]) -> dict[str, Any]:
    """The job's node as the API shows it."""
    node: dict[str, Any] = (
        await client.get(f"/api/nodes/{job['node_id']}", headers=who.headers)
    ).json()
    return node


async def test_transient_error_is_retried_with_backoff(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """A 429 at submit is retried after the backoff and the job then completes on attempt 2."""
    job = await submit_job(client, alice)
    async with WorkerHarness(settings_for(services), retry_base_s=0.4) as harness:
        provider = ScriptedProvider(harness.renderer, [QuotaExceeded("429: slow down")])
        harness.ctx["provider"] = provider
        worker = await harness.drain()
    assert worker.jobs_retried == 1 and worker.jobs_complete == 1
    assert provider.submit_times[1] - provider.submit_times[0] >= 0.4
    row = await job_row(store, job["job_id"])
    assert (row["status"], row["attempts"], row["error"]) == ("completed", 2, None)
    assert await kinds_of(store, job["project_id"]) == [
        "job.created",
        "job.started",
        "job.started",
        "job.completed",
    ]


async def test_max_jobs_bounds_how_many_jobs_a_worker_runs_at_once(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """CANVASFLOW_WORKER_MAX_JOBS=1: three queued jobs run one after another, all complete."""
    jobs = [await submit_job(client, alice) for _ in range(3)]
    ids = [uuid.UUID(j["job_id"]) for j in jobs]
    most_at_once = 0
    async with running_worker(settings_for(services, worker_max_jobs=1)):
        while True:
            rows = await store.db.fetch_all(
                "SELECT status FROM jobs WHERE id = ANY(:ids)", {"ids": ids}
            )
            statuses = [r["status"] for r in rows]
            most_at_once = max(most_at_once, statuses.count("processing"))
            if all(s == "completed" for s in statuses):
                break
            await asyncio.sleep(0.02)
    assert most_at_once == 1


def test_worker_max_jobs_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker refuses CANVASFLOW_WORKER_MAX_JOBS below 1 with a clear message."""
    monkeypatch.setenv("CANVASFLOW_WORKER_MAX_JOBS", "0")
    with pytest.raises(ConfigError, match="CANVASFLOW_WORKER_MAX_JOBS must be at least 1"):
        load_settings()
    monkeypatch.setenv("CANVASFLOW_WORKER_MAX_JOBS", "2")
    assert worker_options(load_settings())["max_jobs"] == 2


async def test_transient_errors_exhausted_fail_the_job(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """After job_max_tries transient failures the job fails with the reason and the count."""
    job = await submit_job(client, alice)
    settings = settings_for(services, job_max_tries=3)
    async with WorkerHarness(settings) as harness:
        harness.ctx["provider"] = ScriptedProvider(
            harness.renderer, [QuotaExceeded("429: quota") for _ in range(5)]
        )
        await harness.drain()
    done = await wait_for_job(client, alice, job["job_id"])
    assert done["status"] == "failed"
    assert done["error"] == "generation failed: 429: quota (gave up after 3 attempts)"
    assert (await job_row(store, job["job_id"]))["attempts"] == 3
    node = await node_of(client, alice, job)
    assert node["status"] == "failed" and node["error_message"] == done["error"]
    kinds = await kinds_of(store, job["project_id"])
    assert kinds.count("job.started") == 3 and kinds[-1] == "job.failed"


async def test_permanent_error_fails_at_once(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """A safety block is not retried: the job fails on attempt 1 with a clear error."""
    job = await submit_job(client, alice)
    async with WorkerHarness(settings_for(services)) as harness:
        provider = ScriptedProvider(harness.renderer, [SafetyBlocked("the prompt was blocked")])
        harness.ctx["provider"] = provider
        worker = await harness.drain()
    assert worker.jobs_retried == 0 and len(provider.submit_times) == 1
    done = await wait_for_job(client, alice, job["job_id"])
    assert done["status"] == "failed"
    assert done["error"] == "blocked by the provider's safety filters: the prompt was blocked"
    assert (await job_row(store, job["job_id"]))["attempts"] == 1
    node = await node_of(client, alice, job)
    assert node["status"] == "failed" and node["error_message"] == done["error"]


async def test_deadline_fails_a_running_job(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """A job still rendering at its deadline fails with "timed out after N s" and stores nothing."""
    job = await submit_job(client, alice, duration=8)
    await store.db.execute(
        "UPDATE jobs SET deadline = created_at + interval '1 second' WHERE id = :id",
        {"id": uuid.UUID(job["job_id"])},
    )
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
        # the render stops at its next frame and is dropped
        for _ in range(100):
            if not harness.renderer.operations:
                break
            await asyncio.sleep(0.02)
        assert harness.renderer.operations == {}
    done = await wait_for_job(client, alice, job["job_id"])
    assert (done["status"], done["error"]) == ("failed", "timed out after 1 s")
    node = await node_of(client, alice, job)
    assert node["status"] == "failed" and node["error_message"] == "timed out after 1 s"
    media = services.data_dir / "media" / f"videos/{job['project_id']}/{job['job_id']}.mp4"
    assert not media.exists()


@pytest.mark.timeout(90)
async def test_stopped_worker_hands_job_back_and_resumes_operation(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """A worker stopped mid-job hands it back; the next run resumes the saved operation instead of submitting again."""
    job = await submit_job(client, alice, duration=8)
    async with running_worker(settings_for(services), lease_s=3) as harness:
        deadline = time.monotonic() + 30
        while (row := await job_row(store, job["job_id"]))["progress"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        operation = row["provider_operation"]
        assert operation is not None and row["attempts"] == 1
        # the lease keeps arq's in-progress key short, not arq's whole job timeout
        ttl_ms = await store.redis.pttl(in_progress_key_prefix + job["job_id"])
        assert 0 < ttl_ms <= 3000
        await harness.stop()
        assert (await job_row(store, job["job_id"]))["status"] == "processing"
        await harness.drain()
        assert harness.renderer.submitted == 1
    row = await job_row(store, job["job_id"])
    assert (row["status"], row["attempts"], row["provider_operation"]) == (
        "completed",
        2,
        operation,
    )


@pytest.mark.timeout(90)
async def test_superseded_run_stops_without_overwriting(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """A run whose job another worker took over (attempts moved on) stops and writes nothing more."""
    job = await submit_job(client, alice, duration=8)
    async with running_worker(settings_for(services)) as harness:
        await wait_for_job(client, alice, job["job_id"], ("processing",))
        # another worker's takeover, as its guarded claim would write it
        await store.db.execute(
            "UPDATE jobs SET attempts = attempts + 1, provider_operation = NULL WHERE id = :id",
            {"id": uuid.UUID(job["job_id"])},
        )
        for _ in range(200):
            if not harness.renderer.operations:
                break
            await asyncio.sleep(0.05)
        assert harness.renderer.operations == {}
        await harness.stop()
    row = await job_row(store, job["job_id"])
    assert (row["status"], row["attempts"], row["result"]) == ("processing", 2, None)
    assert "job.completed" not in await kinds_of(store, job["project_id"])
    media = services.data_dir / "media" / f"videos/{job['project_id']}/{job['job_id']}.mp4"
    assert not media.exists()


@pytest.mark.timeout(120)
async def test_worker_killed_mid_job_is_taken_over(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """SIGKILL a real worker process mid-render: a restarted worker takes the job over and completes it."""
    first = worker_process(services).start()
    second = worker_process(services)
    try:
        job = await submit_job(client, alice, duration=8)
        deadline = time.monotonic() + 60
        while (row := await job_row(store, job["job_id"]))["progress"] == 0:
            assert first.alive, first.log()[-3000:]
            assert time.monotonic() < deadline, first.log()[-3000:]
            await asyncio.sleep(0.05)
        first.kill()
        killed_at = time.monotonic()
        row = await job_row(store, job["job_id"])
        assert (row["status"], row["attempts"]) == ("processing", 1)
        assert 0 < row["progress"] < 1
        second.start()
        done = await wait_for_job(client, alice, job["job_id"], timeout_s=60)
        print(f"killed → completed by the restarted worker: {time.monotonic() - killed_at:.2f} s")
        assert done["status"] == "completed", (done, second.log()[-3000:])
    finally:
        first.kill()
        second.kill()
    row = await job_row(store, job["job_id"])
    assert row["attempts"] == 2
    kinds = await kinds_of(store, job["project_id"])
    assert kinds == ["job.created", "job.started", "job.started", "job.completed"]
    assert (await node_of(client, alice, job))["status"] == "completed"
    video = (services.data_dir / "media" / done["result"]["video_key"]).read_bytes()
    with av.open(io.BytesIO(video), mode="r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(8, abs=0.05)
    processing = await store.db.fetch_val(
        "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')"
    )
    assert processing == 0
