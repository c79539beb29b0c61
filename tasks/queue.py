"""The queue client, shared by the web process (submit, cancel) and the sweeper (re-enqueue).

arq carries only the job id, as arq's own job id too: the worker reads every
parameter from the row, so the queue can never disagree with Postgres, and an
enqueue of a job arq already holds is a no-op (FACTS.md). This module knows
nothing of how jobs run; tasks/worker.py maps each function name to its job.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from arq.connections import ArqRedis
from arq.jobs import Job as ArqJob
from redis.exceptions import RedisError

from common.keys import queue_name

log = logging.getLogger(__name__)

#: job type (jobs.type) → the arq function that runs it; the REST handler shares its name
FUNCTIONS = {"video": "generate_video", "image": "generate_image"}
#: an enqueue that takes longer than this is treated as failed (the sweeper retries it)
ENQUEUE_TIMEOUT_S = 3.0


def open_queue(redis_url: str, namespace: str) -> ArqRedis:
    """An arq client that connects lazily and fails fast: a Redis outage cannot stall a submit."""
    pool: ArqRedis = ArqRedis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    pool.default_queue_name = queue_name(namespace)
    return pool


async def enqueue_job(
    queue: ArqRedis, namespace: str, job_type: str, job_id: UUID, *, job_try: int | None = None
) -> bool:
    """Enqueue the function of `job_type` with `job_id` as its only argument and arq's job id.

    Returns False when arq already holds a job or a result with that id (arq
    makes this idempotent). `job_try` > 1 marks a takeover of a job whose
    worker died. Redis errors and timeouts propagate.
    """
    job = await asyncio.wait_for(
        queue.enqueue_job(
            FUNCTIONS[job_type],
            str(job_id),
            _job_id=str(job_id),
            _queue_name=queue_name(namespace),
            _job_try=job_try,
        ),
        ENQUEUE_TIMEOUT_S,
    )
    return job is not None


async def abort_job(queue: ArqRedis, namespace: str, job_id: UUID) -> None:
    """Ask the worker running (or about to run) the job to cancel it; best effort."""
    arq_job = ArqJob(str(job_id), queue, _queue_name=queue_name(namespace))
    try:
        # timeout 0: register the abort and return; the row is already final
        await asyncio.wait_for(arq_job.abort(timeout=0, poll_delay=0.01), ENQUEUE_TIMEOUT_S)
    except (TimeoutError, RedisError, OSError) as exc:
        log.info("abort of job %s not confirmed: %s", job_id, exc)
