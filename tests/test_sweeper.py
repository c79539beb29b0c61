"""The sweeper: lost jobs are enqueued or taken over, stuck ones fail, nodes never stay processing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import RedisError

from common.keys import queue_name
from db.changes import Store
from tasks.queue import enqueue_job, open_queue
from tasks.sweeper import sweep, sweep_cron
from tests.support.accounts import Account
from tests.support.api import make_node, make_project
from tests.support.procs import RedisServer
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import (
    WorkerHarness,
    job_row,
    running_worker,
    submit_job,
    video_body,
    wait_for_job,
)


async def forget_in_queue(store: Store, services: Services, job_id: str) -> None:
    """Make Redis lose every trace of the job (a flushed or failed-over Redis)."""
    await store.redis.delete(job_key_prefix + job_id, result_key_prefix + job_id)
    await store.redis.zrem(queue_name(services.namespace), job_id)


@pytest.fixture
async def queue(services: Services) -> AsyncIterator[ArqRedis]:
    """An arq client of the test run's Redis."""
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url))
    yield pool
    await pool.aclose()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may stop and start again."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.timeout(120)
async def test_redis_down_at_submit_then_sweeper_enqueues(
    alice: Account, services: Services, store: Store, private_redis: RedisServer
) -> None:
    """With Redis down the submit still answers 202 and keeps the row; once Redis is back the sweeper enqueues it."""
    port = free_port()
    settings = settings_for(
        services, redis_url=private_redis.url, public_url=f"http://127.0.0.1:{port}"
    )
    web = ServerThread(settings, port)
    web.start()
    try:
        async with httpx.AsyncClient(base_url=web.base_url, timeout=20) as c:
            pid = await make_project(c, alice)
            node = await make_node(c, alice, pid, "video")
            private_redis.stop()
            started = time.monotonic()
            r = await c.post(
                "/api/ai/generate-video", json=video_body(node["id"]), headers=alice.headers
            )
            submit_s = time.monotonic() - started
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["status"] == "pending"
            assert submit_s < 5, submit_s
            assert (await job_row(store, job["job_id"]))["status"] == "pending"
            # Redis comes back empty: the queue lost nothing it ever had, the row is all there is
            private_redis.start()
            async with WorkerHarness(settings) as harness:
                assert harness.queue is not None
                report = await sweep(harness.store, harness.queue, settings)
                assert report.enqueued == [job["job_id"]]
                # the next pass finds it queued and leaves it
                assert (await sweep(harness.store, harness.queue, settings)).enqueued == []
                await harness.drain()
            done = await wait_for_job(c, alice, job["job_id"])
            assert done["status"] == "completed"
    finally:
        web.stop()


async def test_sweeper_enqueues_pending_job_the_queue_lost(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """A pending job missing from Redis, or shadowed by a stale arq result, is enqueued again, once."""
    lost = await submit_job(client, alice)
    stale = await submit_job(client, alice)
    await forget_in_queue(store, services, lost["job_id"])
    await forget_in_queue(store, services, stale["job_id"])
    await store.redis.set(result_key_prefix + stale["job_id"], b"an old run's result")
    settings = settings_for(services)
    report = await sweep(store, queue, settings)
    assert sorted(report.enqueued) == sorted([lost["job_id"], stale["job_id"]])
    assert (await sweep(store, queue, settings)).enqueued == []
    queued = await store.redis.zrange(queue_name(services.namespace), 0, -1)
    assert sorted(queued) == sorted([lost["job_id"].encode(), stale["job_id"].encode()])


async def test_sweeper_takes_over_processing_job_of_dead_worker(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """A processing job nobody holds (worker died, queue lost it) is handed to a new worker, which completes it."""
    job = await submit_job(client, alice)
    # as a worker that claimed the job and died would leave it, with Redis since flushed
    await store.db.execute(
        "UPDATE jobs SET status = 'processing', attempts = 1, provider_operation = 'local-gone' "
        "WHERE id = :id",
        {"id": uuid.UUID(job["job_id"])},
    )
    await forget_in_queue(store, services, job["job_id"])
    settings = settings_for(services)
    report = await sweep(store, queue, settings)
    assert report.taken_over == [job["job_id"]] and report.gave_up == []
    async with WorkerHarness(settings) as harness:
        await harness.drain()
    row = await job_row(store, job["job_id"])
    # the saved operation was unknown to the new worker: it submitted again
    assert (row["status"], row["attempts"]) == ("completed", 2)
    assert row["provider_operation"] != "local-gone"


async def test_sweeper_leaves_held_jobs_alone(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """Queued jobs and jobs a live worker holds are not touched."""
    job = await submit_job(client, alice, duration=8)
    settings = settings_for(services)
    untouched: tuple[list[object], ...] = ([], [], [], [], [])
    report = await sweep(store, queue, settings)
    assert (
        report.enqueued,
        report.taken_over,
        report.timed_out,
        report.gave_up,
        report.nodes_reset,
    ) == untouched
    async with running_worker(settings) as harness:
        await wait_for_job(client, alice, job["job_id"], ("processing",))
        report = await sweep(store, queue, settings)
        assert (
            report.enqueued,
            report.taken_over,
            report.timed_out,
            report.gave_up,
            report.nodes_reset,
        ) == untouched
        assert (await wait_for_job(client, alice, job["job_id"]))["status"] == "completed"
        await harness.stop()
    assert (await job_row(store, job["job_id"]))["attempts"] == 1


async def test_sweeper_fails_dead_job_without_tries_left(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """A lost processing job that used all its tries fails, and its node with it."""
    job = await submit_job(client, alice)
    await store.db.execute(
        "UPDATE jobs SET status = 'processing', attempts = 3 WHERE id = :id",
        {"id": uuid.UUID(job["job_id"])},
    )
    await forget_in_queue(store, services, job["job_id"])
    report = await sweep(store, queue, settings_for(services, job_max_tries=3))
    assert report.gave_up == [job["job_id"]]
    done = await wait_for_job(client, alice, job["job_id"])
    assert done["status"] == "failed"
    assert done["error"] == "gave up after 3 attempts: the worker running it stopped"
    node = (await client.get(f"/api/nodes/{job['node_id']}", headers=alice.headers)).json()
    assert node["status"] == "failed" and node["error_message"] == done["error"]


async def test_sweeper_times_out_jobs_past_deadline(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """Pending and processing jobs past their deadline fail with "timed out after N s"."""
    pending = await submit_job(client, alice)
    processing = await submit_job(client, alice)
    # submitted an hour ago with 30 s to finish
    await store.db.execute(
        "UPDATE jobs SET created_at = now() - interval '1 hour', "
        "deadline = now() - interval '1 hour' + interval '30 seconds'"
    )
    await store.db.execute(
        "UPDATE jobs SET status = 'processing', attempts = 1 WHERE id = :id",
        {"id": uuid.UUID(processing["job_id"])},
    )
    report = await sweep(store, queue, settings_for(services))
    assert sorted(report.timed_out) == sorted([pending["job_id"], processing["job_id"]])
    for job in (pending, processing):
        done = await wait_for_job(client, alice, job["job_id"])
        assert (done["status"], done["error"]) == ("failed", "timed out after 30 s")


async def test_sweeper_resets_nodes_processing_without_a_job(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store, queue: ArqRedis
) -> None:
    """A processing node without a live job takes its latest job's status: none/cancelled → idle, failed → failed."""
    pid = await make_project(client, alice)
    bare = await make_node(client, alice, pid, "video")
    failed = await make_node(client, alice, pid, "video")
    busy = await make_node(client, alice, pid, "video")
    r = await client.post(
        "/api/ai/generate-video", json=video_body(failed["id"]), headers=alice.headers
    )
    await store.db.execute(
        "UPDATE jobs SET status = 'failed', error = 'boom' WHERE id = :id",
        {"id": uuid.UUID(r.json()["job_id"])},
    )
    r = await client.post(
        "/api/ai/generate-video", json=video_body(busy["id"]), headers=alice.headers
    )
    await store.db.execute("UPDATE nodes SET status = 'processing'")
    report = await sweep(store, queue, settings_for(services))
    assert sorted(report.nodes_reset) == sorted([bare["id"], failed["id"]])
    nodes = {
        n["id"]: n
        for n in (await client.get(f"/api/projects/{pid}/nodes", headers=alice.headers)).json()
    }
    assert nodes[bare["id"]]["status"] == "idle"
    assert (nodes[failed["id"]]["status"], nodes[failed["id"]]["error_message"]) == (
        "failed",
        "boom",
    )
    assert nodes[busy["id"]]["status"] == "processing"
    kinds = await store.db.fetch_all("SELECT kind FROM events ORDER BY seq DESC LIMIT 2")
    assert [k["kind"] for k in kinds] == ["node.updated", "node.updated"]


async def test_sweeper_prunes_old_events_and_expired_sessions(
    alice: Account, services: Services, store: Store
) -> None:
    """Events older than a week and expired sessions go; recent ones stay (run as the worker's cron)."""
    user = uuid.UUID(alice.user_id)
    project = await store.db.fetch_val(
        "INSERT INTO projects (owner_id, name, seq) VALUES (:u, 'p', 3) RETURNING id", {"u": user}
    )
    for seq, age in ((1, "8 days"), (2, "6 days"), (3, "1 minute")):
        await store.db.execute(
            "INSERT INTO events (project_id, seq, kind, data, created_at) "
            f"VALUES (:p, :s, 'node.created', '{{}}', now() - interval '{age}')",
            {"p": project, "s": seq},
        )
    await store.db.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ('\\x01', :u, now() - interval '1 second')",
        {"u": user},
    )
    async with WorkerHarness(settings_for(services)) as harness:
        report = await sweep_cron(harness.ctx)
    assert report["events_pruned"] == 1 and report["sessions_pruned"] == 1
    left = await store.db.fetch_all(
        "SELECT seq FROM events WHERE project_id = :p ORDER BY seq", {"p": project}
    )
    assert [r["seq"] for r in left] == [2, 3]
    # alice's own session is untouched
    assert (
        await store.db.fetch_val("SELECT count(*) FROM sessions WHERE user_id = :u", {"u": user})
        == 1
    )


async def test_enqueue_fails_fast_against_a_dead_redis(services: Services) -> None:
    """enqueue_job against a closed port raises within seconds instead of hanging a request."""
    dead = open_queue(f"redis://127.0.0.1:{free_port()}/0", services.namespace)
    started = time.monotonic()
    with pytest.raises((RedisError, OSError, TimeoutError)):
        await enqueue_job(dead, services.namespace, "video", uuid.uuid4())
    await dead.aclose()
    assert time.monotonic() - started < 5
