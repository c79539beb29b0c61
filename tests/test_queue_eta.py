"""Time: queue positions, ETAs from measured durations, and estimated progress (issue 17).

Veo is the loopback fake (tests/budget_utils.py): it reports no progress, and
how long a job takes is set by how many polls it answers "running".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import msgspec

from common import protocol
from common.keys import project_channel
from common.protocol.events import Event, JobProgress, decode_bus
from db.changes import Store
from tasks.runs import claim
from tests.support.accounts import Account, sign_up
from tests.support.api import make_node, make_project
from tests.support.budgets import Rig, rig, web
from tests.support.metrics import scrape, value
from tests.support.waits import until
from tests.support.workers import WorkerHarness, job_row, running_worker, video_body, wait_for_job
from tests.support.ws import WsClient

__all__ = ["rig", "web"]

#: enough for every clip of this module (tests/budget_utils.py's rig reads it)
BUDGET = 100.0


async def submit(client: httpx.AsyncClient, who: Account, node_id: str) -> dict[str, Any]:
    """generate-video with the default clip; the 202's job."""
    r = await client.post("/api/ai/generate-video", json=video_body(node_id), headers=who.headers)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


async def positions(client: httpx.AsyncClient, who: Account, jobs: list[str]) -> list[Any]:
    """Each job's queue position as GET /api/ai/jobs/{id} tells it now."""
    found = []
    for job_id in jobs:
        r = await client.get(f"/api/ai/jobs/{job_id}", headers=who.headers)
        assert r.status_code == 200, r.text
        found.append(r.json()["queue_position"])
    return found


async def test_queue_positions_of_five_pending_jobs_move_as_each_starts(
    web: httpx.AsyncClient, rig: Rig, store: Store
) -> None:
    """Five pending jobs are at 1-5 (REST, snapshot, live ticks); each start moves the rest up."""
    alice = await sign_up(web)
    pid = await make_project(web, alice)
    nodes = [(await make_node(web, alice, pid, "video", x=i * 10))["id"] for i in range(5)]
    jobs = [(await submit(web, alice, n))["job_id"] for n in nodes]
    assert await positions(web, alice, jobs) == [1, 2, 3, 4, 5]

    async def depth_by_position() -> bool:
        # operators see the queue by position band once the ticker has run
        samples = await scrape(f"{rig.server.base_url}/metrics")
        bands = {b: value(samples, "canvasflow_pending_jobs", position=b) for b in ("1", "2-5")}
        return bands == {"1": 1, "2-5": 4}

    await until(depth_by_position, "canvasflow_pending_jobs at 1 and 4")
    ws = await WsClient.open(rig.server.base_url, alice.token)
    try:
        await ws.subscribe(pid)
        snapshot = await ws.expect(protocol.Snapshot)
        assert {str(j.job_id): j.queue_position for j in snapshot.jobs} == dict(
            zip(jobs, [1, 2, 3, 4, 5], strict=True)
        )
        async with WorkerHarness(rig.worker_settings) as harness:
            for started in range(5):
                # a worker claims the job at the head of the queue, as arq would hand it over
                taken = await claim(harness.ctx, uuid.UUID(jobs[started]))
                assert taken is not None and taken.status == "processing"
                left = jobs[started + 1 :]
                assert await positions(web, alice, left) == list(range(1, len(left) + 1))
                assert await positions(web, alice, jobs[: started + 1]) == [None] * (started + 1)
                if left:
                    # the queue ticker tells subscribers the last job's new place
                    last = uuid.UUID(left[-1])
                    while True:
                        tick = await ws.recv(timeout_s=10)
                        if (
                            isinstance(tick, JobProgress)
                            and tick.job_id == last
                            and tick.queue_position == len(left)
                        ):
                            break
    finally:
        await ws.close()


async def run_one(
    web: httpx.AsyncClient, who: Account, harness: WorkerHarness, node_id: str
) -> tuple[dict[str, Any], float]:
    """Submit a clip, run it, return the 202's job and the run time measured in Postgres."""
    job = await submit(web, who, node_id)
    await harness.drain()
    done = await wait_for_job(web, who, job["job_id"])
    assert done["status"] == "completed", done
    row = await job_row(harness.store, job["job_id"])
    started: datetime = row["started_at"]
    return job, (row["updated_at"] - started).total_seconds()


async def test_the_eta_of_the_sixth_job_of_a_kind_is_within_half_its_run_time(
    web: httpx.AsyncClient, rig: Rig, store: Store
) -> None:
    """After five clips of one kind have run, the sixth's ETA is within 50 % of how long it takes."""
    rig.reset(polls_until_done=6)
    before = await scrape(f"{rig.server.base_url}/metrics")
    errors_before = value(before, "canvasflow_eta_error_ratio_count", type="video")
    alice = await sign_up(web)
    pid = await make_project(web, alice)
    nodes = [(await make_node(web, alice, pid, "video", x=i * 10))["id"] for i in range(6)]
    async with WorkerHarness(rig.worker_settings) as harness:
        durations = []
        for node in nodes[:5]:
            job, run_s = await run_one(web, alice, harness, node)
            durations.append(run_s)
            if not durations[:-1]:
                assert job["eta_s"] is None  # nothing of its kind had finished yet
        sixth, actual_s = await run_one(web, alice, harness, nodes[5])
    kind = await store.db.fetch_one("SELECT key, samples, mean_s FROM job_durations")
    assert kind is not None and kind["samples"] == 6
    assert kind["key"] == "veo|veo-3.1-generate-001|text|720p|4"
    eta_s = sixth["eta_s"]
    assert eta_s is not None and sixth["queue_position"] == 1
    error = abs(eta_s - actual_s) / actual_s
    # the ETA error of every completed job whose kind had measurements (five of the six)
    samples = await scrape(f"{rig.server.base_url}/metrics")
    assert value(samples, "canvasflow_eta_error_ratio_count", type="video") - errors_before == 5
    print(
        f"run times {[round(d, 2) for d in durations]}; sixth: ETA {eta_s} s, took {actual_s:.2f} s"
    )
    print(f"ETA error {error:.0%}")
    assert error <= 0.5, (eta_s, actual_s, durations)


async def test_estimated_progress_rises_and_stays_below_one_until_completion(
    web: httpx.AsyncClient, rig: Rig, store: Store
) -> None:
    """Veo reports no progress: the estimate is flagged, never falls, stays below 1, and is in snapshots."""
    rig.reset(polls_until_done=10)
    alice = await sign_up(web)
    pid = await make_project(web, alice)
    node = await make_node(web, alice, pid, "video")
    pubsub = store.redis.pubsub()
    await pubsub.subscribe(project_channel(store.namespace, pid))
    confirmed = await pubsub.get_message(timeout=2)
    assert confirmed is not None and confirmed["type"] == "subscribe"
    try:
        async with running_worker(rig.worker_settings):
            job = await submit(web, alice, node["id"])

            async def estimated() -> bool:
                row = await job_row(store, job["job_id"])
                return bool(row["progress_estimated"]) and row["progress"] > 0

            await until(estimated, "an estimated progress saved", timeout_s=30)
            # a client that connects mid-run reads the current estimate in its snapshot
            ws = await WsClient.open(rig.server.base_url, alice.token)
            try:
                await ws.subscribe(pid)
                snapshot = await ws.expect(protocol.Snapshot)
            finally:
                await ws.close()
            [live] = [j for j in snapshot.jobs if str(j.job_id) == job["job_id"]]
            assert live.status == "processing" and live.progress_estimated
            assert 0 < live.progress < 1
            done = await wait_for_job(web, alice, job["job_id"], timeout_s=60)
        heard = []
        while msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2):
            heard.append(decode_bus(msg["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert done["status"] == "completed" and done["progress"] == 1.0
    ticks = [m for m in heard if isinstance(m, JobProgress) and m.queue_position is None]
    progress = [t.progress for t in ticks]
    print(f"estimated progress ticks: {progress}")
    assert len(progress) >= 2 and all(t.estimated for t in ticks)
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    assert all(0 < p < 1 for p in progress)
    # the completion event, after the last tick, is what brings 1
    completed = [m for m in heard if isinstance(m, Event) and m.kind == "job.completed"]
    assert msgspec.to_builtins(completed[0].data)["job"]["progress"] == 1.0
