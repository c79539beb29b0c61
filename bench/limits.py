"""The LIMITS of submit: raw arq enqueue and pickup (no web process, no Postgres), and a
bare INSERT of a job-shaped row on the same Postgres.

The raw arq worker below is a real arq worker started by arq's CLI
(`python -m arq bench.limits.RawArqWorker`) with a job that does nothing but note when it
started, polling as often as canvasflow's worker does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import asyncpg
from arq.connections import RedisSettings, create_pool

from bench.services import Proc, Services
from bench.stats import Latency

#: the list the raw worker appends pickup latencies to (namespaced by the run)
PICKUPS_SUFFIX = ":bench:pickups"


def _raw_queue(namespace: str) -> str:
    return f"{namespace}:bench:rawqueue"


async def noop(ctx: dict[str, Any], enqueued_t: float) -> None:
    """A job that only records how long after its enqueue it started (one clock)."""
    picked = time.monotonic()
    await ctx["redis"].rpush(os.environ["BENCH_NAMESPACE"] + PICKUPS_SUFFIX, picked - enqueued_t)


class RawArqWorker:
    """arq WorkerSettings of the raw limit: canvasflow's poll delay, a no-op job."""

    functions = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://"))
    queue_name = _raw_queue(os.environ.get("BENCH_NAMESPACE", "cfb"))
    poll_delay = float(os.environ.get("CANVASFLOW_WORKER_POLL_DELAY_S", "0.05"))
    max_jobs = 10
    keep_result = 0
    handle_signals = True


def raw_worker(services: Services, poll_delay_s: float) -> Proc:
    """The raw arq worker process (not started)."""
    env = services.env(
        BENCH_REDIS_URL=services.redis_url,
        BENCH_NAMESPACE=services.namespace,
        CANVASFLOW_WORKER_POLL_DELAY_S=str(poll_delay_s),
    )
    return Proc([sys.executable, "-m", "arq", "bench.limits.RawArqWorker"], env, "rawarq")


async def _enqueue_many(
    services: Services, count: int, concurrency: int, rate: float | None, budget_s: float
) -> tuple[list[float], float]:
    """Enqueue `count` no-op jobs; returns per-enqueue latencies and the elapsed time."""
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url))
    queue = _raw_queue(services.namespace)
    latencies: list[float] = []
    next_i = 0
    t0 = time.monotonic()

    async def one_worker() -> None:
        nonlocal next_i
        while next_i < count and time.monotonic() - t0 < budget_s:
            i = next_i
            next_i += 1
            if rate:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            start = time.monotonic()
            await pool.enqueue_job(
                "noop",
                start,
                _job_id=f"bench-{services.namespace}-{uuid.uuid4().hex}",
                _queue_name=queue,
            )
            latencies.append(time.monotonic() - start)

    try:
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return latencies, time.monotonic() - t0
    finally:
        await pool.aclose()


async def _pickups(services: Services, expected: int, timeout_s: float) -> list[float]:
    """Wait (bounded) until the raw worker recorded `expected` pickups; return them."""
    from redis.asyncio import Redis

    key = services.namespace + PICKUPS_SUFFIX
    client = Redis.from_url(services.redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        # polling, bounded: the worker is another process, there is nothing to await
        while time.monotonic() < deadline and await client.llen(key) < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        values = await client.lrange(key, 0, -1)
        await client.delete(key)
        return [float(v) for v in values]
    finally:
        await client.aclose()


def arq_limits(
    services: Services,
    *,
    throughput_count: int,
    pickup_count: int,
    pickup_rate: float,
    poll_delay_s: float,
) -> dict[str, Any]:
    """Raw arq: enqueue rate with 16 concurrent enqueuers, then pickup latency at a low rate."""
    # 1. enqueue throughput with no worker running (jobs only pile up, as in the submit run)
    latencies, elapsed = asyncio.run(
        _enqueue_many(services, throughput_count, concurrency=16, rate=None, budget_s=60)
    )
    enqueue = {
        "enqueues_per_s": round(len(latencies) / elapsed, 1),
        "latency": Latency.of_seconds(latencies).as_dict(),
    }
    _drop_raw_queue(services)
    # 2. pickup latency: a real arq worker, jobs paced so the queue is empty between them
    worker = raw_worker(services, poll_delay_s).start()
    try:
        time.sleep(1.0)  # arq's startup (Redis connect, banner) before the first enqueue
        asyncio.run(
            _enqueue_many(services, pickup_count, concurrency=1, rate=pickup_rate, budget_s=60)
        )
        pickups = asyncio.run(_pickups(services, pickup_count, timeout_s=20))
    finally:
        worker.stop()
    _drop_raw_queue(services)
    return {
        "enqueue": enqueue,
        "pickup": Latency.of_seconds(pickups).as_dict(),
        "pickup_rate_per_s": pickup_rate,
        "poll_delay_s": poll_delay_s,
    }


def _drop_raw_queue(services: Services) -> None:
    import redis

    client = redis.Redis.from_url(services.redis_url)
    try:
        client.delete(_raw_queue(services.namespace))
        keys = list(client.scan_iter(match=f"arq:job:bench-{services.namespace}-*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


async def _bare_inserts(database_url: str, count: int, concurrency: int) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        # the jobs table's shape and indexes, without foreign keys: what one INSERT costs
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_bare_jobs (LIKE jobs INCLUDING DEFAULTS "
            "INCLUDING INDEXES)"
        )
    finally:
        await conn.close()
    # the web process's pool size (db/connect.py: max_size 10)
    pool = await asyncpg.create_pool(database_url, min_size=10, max_size=10)
    latencies: list[float] = []
    next_i = 0
    t0 = time.monotonic()

    async def one_worker() -> None:
        nonlocal next_i
        while next_i < count and time.monotonic() - t0 < 60:
            next_i += 1
            start = time.monotonic()
            await pool.execute(
                "INSERT INTO bench_bare_jobs (project_id, node_id, type, params) "
                "VALUES ($1, $2, 'video', $3::jsonb)",
                uuid.uuid4(),
                uuid.uuid4(),
                '{"prompt": "a benchmark", "resolution": "720p", "duration": 8}',
            )
            latencies.append(time.monotonic() - start)

    try:
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    finally:
        await pool.close()
    return {
        "inserts_per_s": round(len(latencies) / elapsed, 1),
        "latency": Latency.of_seconds(latencies).as_dict(),
        "concurrency": concurrency,
    }


def insert_limit(services: Services, count: int) -> dict[str, Any]:
    """A bare INSERT of a job-shaped row, 16 concurrent over a 10-connection pool."""
    return asyncio.run(_bare_inserts(services.database_url, count, concurrency=16))
