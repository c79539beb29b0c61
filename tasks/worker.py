"""The worker process: `canvasflow worker` (the Procfile's `worker:` line) runs WorkerSettings.

Only settings, startup, shutdown and crons live here; the jobs are in
tasks/video.py and tasks/image.py, the sweeper in tasks/sweeper.py, and the arq Worker
that outlives Redis faults in tasks/worker_loop.py. (`arq tasks.worker.WorkerSettings`
runs the same settings on arq's own Worker, which a dropped connection can end.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.worker import func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.config import ConfigError, Settings, load_settings
from common.keys import queue_name
from db.changes import Store
from db.connect import make_database
from db.migrate import migrate
from tasks.image import JOB_TYPE as IMAGE_JOB
from tasks.image import generate_image
from tasks.providers.auto import make_image_provider, make_provider
from tasks.queue import FUNCTIONS
from tasks.storage.auto import make_storage
from tasks.sweeper import sweep_cron
from tasks.video import JOB_TYPE as VIDEO_JOB
from tasks.video import generate_video

#: arq's own timeout sits this far above the job timeout: the job's deadline fires first
_TIMEOUT_MARGIN_S = 60
#: Redis commands of a worker retry this often, backing off from 50 ms to 1 s (~1 min in all)
_REDIS_RETRIES = 64


async def open_context(settings: Settings, redis: ArqRedis) -> dict[str, Any]:
    """What every job needs: Postgres, the Redis store, storage, the provider, the knobs."""
    if not settings.database_url:
        raise ConfigError("DATABASE_URL must be set for a worker.")
    db = make_database(settings.database_url, acquire_timeout_s=settings.db_acquire_timeout_s)
    await db.connect()
    # a worker may start before any web process: bring the schema up to date too
    await migrate(db)
    return {
        "settings": settings,
        # arq sets the same pool as ctx["redis"] when it runs; set here for direct callers too
        "redis": redis,
        "store": Store(db=db, redis=redis, namespace=settings.namespace),
        "storage": make_storage(settings),
        "provider": make_provider(settings),
        "image_provider": make_image_provider(settings),
        "lease_s": settings.job_lease_s,
        "retry_base_s": settings.job_retry_base_s,
    }


async def close_context(ctx: dict[str, Any]) -> None:
    """Stop local renders and close Postgres (arq closes its Redis itself)."""
    for name in ("provider", "image_provider"):
        close = getattr(ctx.get(name), "aclose", None)
        if close is not None:
            await close()
    store: Store | None = ctx.get("store")
    if store is not None:
        await store.db.disconnect()


async def startup(ctx: dict[str, Any]) -> None:
    """arq on_startup: JSON logs, optional metrics endpoint, then the job context."""
    from common.logs import configure_logging

    configure_logging(SETTINGS.log_level)
    if not SETTINGS.redis_url:
        raise ConfigError("REDIS_URL must be set for a worker.")
    if SETTINGS.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(SETTINGS.worker_metrics_port)
    ctx.update(await open_context(SETTINGS, ctx["redis"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    """arq on_shutdown: release what startup opened."""
    await close_context(ctx)


def redis_settings(redis_url: str) -> RedisSettings:
    """arq's Redis settings, retrying commands through a Redis restart.

    A command retries on a new connection for about a minute; what still fails
    then (or a WATCH lost with its connection, which redis-py never retries)
    reaches tasks/worker_loop.py's Worker, which polls again.
    """
    return dataclasses.replace(
        RedisSettings.from_dsn(redis_url),
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), _REDIS_RETRIES),
        # OSError too: a refused connect reaches the retry unwrapped
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq Worker keyword arguments for these settings (the test harness reuses them)."""
    return {
        "functions": [
            func(
                job,
                name=FUNCTIONS[job_type],
                timeout=settings.job_timeout_s + _TIMEOUT_MARGIN_S,
                # our own attempt count (job_max_tries) decides; arq's is only a backstop
                max_tries=2 * settings.job_max_tries + 2,
            )
            for job_type, job in ((VIDEO_JOB, generate_video), (IMAGE_JOB, generate_image))
        ],
        "cron_jobs": [
            # named per namespace: arq's cron job ids are global to the Redis server
            cron(
                sweep_cron,
                name=f"{settings.namespace}:sweep",
                second={0, 30},
                timeout=120,
                run_at_startup=True,
            )
        ],
        "queue_name": queue_name(settings.namespace),
        "redis_settings": redis_settings(settings.redis_url or "redis://localhost:6379/0"),
        "poll_delay": settings.worker_poll_delay_s,
        "max_jobs": settings.worker_max_jobs,
        # cancel (POST /api/ai/jobs/{id}/cancel) aborts the running job
        "allow_abort_jobs": True,
        "health_check_interval": 60,
    }


SETTINGS = load_settings()
_OPTIONS = worker_options(SETTINGS)


class WorkerSettings:
    """What `canvasflow worker` runs (tasks.worker_loop.Worker), configured from the environment."""

    functions = _OPTIONS["functions"]
    cron_jobs = _OPTIONS["cron_jobs"]
    queue_name = _OPTIONS["queue_name"]
    redis_settings = _OPTIONS["redis_settings"]
    poll_delay = _OPTIONS["poll_delay"]
    max_jobs = _OPTIONS["max_jobs"]
    allow_abort_jobs = _OPTIONS["allow_abort_jobs"]
    health_check_interval = _OPTIONS["health_check_interval"]
    on_startup = startup
    on_shutdown = shutdown
