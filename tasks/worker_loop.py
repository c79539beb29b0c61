"""arq's Worker, made to outlive every Redis fault of its poll loop.

arq 0.28's loop (`Worker._poll_iteration`) reads the queue, claims each job in a
WATCH/MULTI/EXEC pipeline (`start_jobs`), cancels aborted jobs, collects
finished job tasks and writes its health key and crons (`heart_beat`). It
catches none of Redis's faults but the `WatchError` of its EXEC, so:

- redis-py raises `WatchError` (not ConnectionError, and without retrying)
  when a connection drops while a key is WATCHed: at the EXISTS and ZSCORE
  that `start_jobs` sends between WATCH and MULTI, and at the EXISTS of
  `enqueue_job` (arq's crons). The error ended the worker process, and
  `start_jobs` had taken a slot of `max_jobs` it never gave back.
- a Redis that stays away longer than the commands' retries (tasks/worker.py)
  raises ConnectionError or TimeoutError from any command of the loop, or from
  a finished job's task when the loop collects it.

`Worker` here turns each into a warning and polls again; a claim that failed
gives its slot back, and the next poll claims the job again.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import worker as arq_worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

log = logging.getLogger("canvasflow.worker")

#: what a Redis restart or a dropped connection raises (OSError: a refused connect, unwrapped)
REDIS_FAULTS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    WatchError,
    OSError,
    TimeoutError,
)


class Worker(arq_worker.Worker):
    """arq's Worker; a Redis fault in its poll loop is logged and the loop goes on."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start each job as arq does; a claim that Redis broke gives its slot back."""
        for job_id in job_ids:
            try:
                await super().start_jobs([job_id])
            except REDIS_FAULTS as exc:
                # arq counted the job and took a semaphore slot before its claim pipeline
                # failed; it gives both back only on the paths it expects
                self.job_counter -= 1
                self.sem.release()
                log.warning("worker: claiming job %s failed (%r); next poll", job_id.decode(), exc)
                return

    async def _poll_iteration(self) -> None:
        """One pass of arq's loop; a Redis fault anywhere in it waits for the next pass."""
        try:
            await super()._poll_iteration()
        except REDIS_FAULTS as exc:
            log.warning("worker: Redis fault in the poll loop (%r); polling again", exc)


def run_worker(settings_cls: type) -> None:
    """Run a Worker configured by an arq WorkerSettings class until a signal stops it."""
    # arq types get_kwargs' values as NameError (sic): they are the settings' attributes
    options: dict[str, Any] = dict(arq_worker.get_kwargs(settings_cls))
    Worker(**options).run()
