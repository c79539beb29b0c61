"""The production worker (tasks/worker_loop.py, crons included) in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from common.config import Settings
from tasks.worker import close_context, open_context, redis_settings, worker_options
from tasks.worker_loop import Worker


def production_worker(settings: Settings, retries: int | None = None) -> Worker:
    """The worker `canvasflow worker` runs on `settings`, without signal handlers.

    `retries` shortens the Redis command retries, so that a Redis away for a few
    connection attempts outlasts them.
    """
    options = worker_options(settings)
    if retries is not None:
        options["redis_settings"] = dataclasses.replace(
            redis_settings(settings.redis_url or ""),
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries),
        )

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx.update(await open_context(settings, ctx["redis"]))

    options.update(
        handle_signals=False,
        on_startup=on_startup,
        on_shutdown=close_context,
        poll_delay=0.02,
    )
    return Worker(**options)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run `worker` in the background; stop it and its jobs and close its clients afterwards.

    The loop is stopped between two passes: a cancel inside a pass can land in
    redis-py's pipeline clean-up and leave a connection that warns when collected.
    """
    between_passes = asyncio.Event()
    stopping = False
    one_pass = worker._poll_iteration

    async def poll_iteration() -> None:
        if stopping:
            between_passes.set()
            return
        await one_pass()

    worker._poll_iteration = poll_iteration  # type: ignore[method-assign]
    task = asyncio.create_task(worker.async_run())
    try:
        yield task
    finally:
        stopping = True
        if not task.done() and worker.ctx.get("redis") is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await between_passes.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for job in worker.tasks.values():
            job.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        # what arq's Worker.close does, without its deprecated Redis close()
        await close_context(worker.ctx)
        if worker.ctx.get("redis") is not None:
            await worker.pool.aclose()
