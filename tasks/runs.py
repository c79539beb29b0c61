"""What every job run shares, whatever it makes: claim, lease, deadline, retry, fail.

A job function (tasks/video.py, tasks/image.py) hands its job id to
`run_job` with the Run subclass that knows how to generate; everything else
of a run's life is here:
1. claim: pending → processing (db.lifecycle START, event `job.started`),
   bumping `attempts`. A job already processing is taken over only when arq
   says this is a retry (`job_try > 1`: the previous run died, was stopped or
   asked for a retry); otherwise it is a duplicate delivery and runs nothing.
2. lease: while the run lives it keeps arq's in-progress key for the job
   alive for `lease_s` at a time. That key is what stops a second worker from
   starting the job, and because it lapses within `lease_s` of a worker dying,
   another worker takes the job over quickly instead of after arq's full
   timeout.
3. generate: the subclass's `generate()`, under the job's deadline.
4. outcome: transient errors retry with backoff while tries remain, the rest
   fail the job with a message that says why (FAIL, `job.failed`).

Every write of a run is guarded by status `processing` AND its own attempt
number: a run that was cancelled or taken over can no longer change anything,
so it stops without overwriting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq.constants import in_progress_key_prefix
from arq.worker import Retry
from redis.exceptions import RedisError

from common import logs
from common.config import Settings
from db.changes import Store
from db.jobs import FINAL_STATUSES, GuardFailed, Job, JobStatus, get_job, update_job
from db.lifecycle import complete_job, fail_job, retry_delay_s, start_job
from db.takes import NewTake
from tasks.providers.base import (
    InvalidRequest,
    ProviderError,
    SafetyBlocked,
    TransientProviderError,
)
from tasks.storage.base import Storage, StorageError

log = logging.getLogger(__name__)


def timeout_message(job: Job) -> str:
    """`timed out after N s`, N being the job's whole allowance from submit to deadline."""
    allowed = 0 if job.deadline is None else (job.deadline - job.created_at).total_seconds()
    return f"timed out after {round(allowed)} s"


class Stop(Exception):
    """This run lost the job (cancelled, or taken over): stop without writing."""


def _describe(exc: ProviderError) -> str:
    """A message for the job's `error` that says what happened in words."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, SafetyBlocked):
        return f"blocked by the provider's safety filters: {detail}"
    if isinstance(exc, InvalidRequest):
        return f"the provider refused the request: {detail}"
    return f"generation failed: {detail}"


class Run:
    """One attempt at one job, holding what every step needs; subclasses `generate`."""

    def __init__(self, ctx: dict[str, Any], job: Job) -> None:
        self.ctx = ctx
        self.job = job
        self.attempt = job.attempts
        self.store: Store = ctx["store"]
        self.settings: Settings = ctx["settings"]
        self.storage: Storage = ctx["storage"]
        self.lease_s: float = ctx["lease_s"]

    @property
    def max_tries(self) -> int:
        return max(1, self.settings.job_max_tries)

    async def run(self) -> str:
        """Generate under the job's deadline; map every outcome onto the job row."""
        remaining_s: float | None = None
        if self.job.deadline is not None:
            remaining_s = (self.job.deadline - datetime.now(UTC)).total_seconds()
            if remaining_s <= 0:
                await self.fail(timeout_message(self.job))
                return "timed out"
        deadline = asyncio.timeout(remaining_s)
        try:
            async with deadline:
                await self.with_lease(self.generate())
        except asyncio.CancelledError:
            # arq aborted the job (a user cancelled it) or the worker is stopping: the row is
            # not ours to touch. Only a cancelled job's render is dropped; a stopping worker's
            # operation is resumed by whoever takes the job over.
            with contextlib.suppress(Exception):
                current = await asyncio.wait_for(get_job(self.store.db, self.job.id), 2)
                if current is not None and current.status == JobStatus.CANCELLED:
                    await self.discard()
            raise
        except TimeoutError as exc:
            if deadline.expired():
                await self.discard()
                await self.fail(timeout_message(self.job))
                return "timed out"
            # a timeout of our own (storage, database): the operation stays for the next try
            return await self.retry_or_fail(f"timed out: {exc}" if str(exc) else "timed out")
        except Stop as stop:
            await self.discard()
            log.info("job %s: run %d stopped: %s", self.job.id, self.attempt, stop)
            return f"stopped: {stop}"
        except TransientProviderError as exc:
            return await self.retry_or_fail(str(exc) or type(exc).__name__)
        except ProviderError as exc:
            await self.fail(_describe(exc))
            return "failed"
        except StorageError as exc:
            await self.fail(f"an input could not be read: {exc}")
            return "failed"
        except Exception as exc:
            # a bug or an outage of ours (storage, database): worth another try, then give up
            log.exception("job %s: attempt %d crashed", self.job.id, self.attempt)
            return await self.retry_or_fail(f"internal error: {type(exc).__name__}: {exc}")
        return "completed"

    async def generate(self) -> None:
        """Make the job's outputs, store them and complete the job (the subclass's work)."""
        raise NotImplementedError

    async def discard(self) -> None:
        """Drop what a stopping run started elsewhere, if anything (overridden where it can)."""

    async def retry_or_fail(self, reason: str) -> str:
        """Retry with exponential backoff while tries remain, else fail the job with `reason`."""
        if self.attempt < self.max_tries:
            defer_s = retry_delay_s(self.settings.job_retry_base_s, self.attempt)
            log.warning(
                "job %s: attempt %d of %d failed (%s); retrying in %.1f s",
                self.job.id,
                self.attempt,
                self.max_tries,
                reason,
                defer_s,
            )
            # the job stays processing; the next arq try takes it over (job_try > 1)
            raise Retry(defer=defer_s)
        await self.fail(f"generation failed: {reason} (gave up after {self.attempt} attempts)")
        return "failed"

    async def fail(self, message: str) -> None:
        """Fail the job if this run still owns it."""
        if await fail_job(self.store, self.job, message, attempt=self.attempt):
            log.warning("job %s failed: %s", self.job.id, message)

    async def with_lease(self, work: Any) -> None:
        """Run `work` while keeping the lease; stop it (raising Stop) if the lease is lost."""
        work_task = asyncio.ensure_future(work)
        lease_task = asyncio.create_task(self.keep_lease())
        try:
            done, _ = await asyncio.wait(
                {work_task, lease_task}, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            # arq aborted the job, or the worker is shutting down: stop both and tell arq
            work_task.cancel()
            lease_task.cancel()
            await asyncio.gather(work_task, lease_task, return_exceptions=True)
            raise
        if work_task in done:
            lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease_task
            work_task.result()
            return
        # the lease ended first: another worker owns the job now, or it was cancelled
        work_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work_task
        lease_task.result()
        raise Stop("lost the job's lease")

    async def keep_lease(self) -> None:
        """Keep arq's in-progress key alive `lease_s` ahead; return when the job is lost."""
        redis = self.store.redis
        key = in_progress_key_prefix + str(self.job.id)
        lease_ms = int(self.lease_s * 1000)
        while True:
            try:
                if not await redis.pexpire(key, lease_ms):
                    # the key lapsed (a long stall, or Redis lost it): still ours?
                    current = await get_job(self.store.db, self.job.id)
                    if (
                        current is None
                        or current.status != JobStatus.PROCESSING
                        or current.attempts != self.attempt
                    ):
                        return
                    # NX: if another worker started the job meanwhile, it keeps it
                    if not await redis.set(key, b"1", px=lease_ms, nx=True):
                        return
            except (RedisError, OSError) as exc:
                # Redis blips must not kill a render: the Postgres guards still protect writes
                log.warning("job %s: lease refresh failed: %s", self.job.id, exc)
            await asyncio.sleep(self.lease_s / 3)

    async def save(self, **fields: Any) -> None:
        """A plain guarded write of this run (operation name, progress); Stop if not ours."""
        updated = await update_job(
            self.store.db,
            self.job.id,
            expect=(JobStatus.PROCESSING,),
            expect_attempts=self.attempt,
            **fields,
        )
        if updated is None:
            raise Stop("the job was cancelled or taken over")

    async def finish(
        self, result: dict[str, Any], takes: list[NewTake], media_field: str, requested: int
    ) -> None:
        """COMPLETE this run with its outputs as takes (the first one active in `media_field`),
        charged for what came of what was asked; Stop if the job is no longer ours."""
        try:
            await complete_job(
                self.store,
                self.job,
                attempt=self.attempt,
                result=result,
                outputs=takes,
                media_field=media_field,
                final_cost=self.final_cost(len(takes), requested),
            )
        except GuardFailed:
            raise Stop("the job was cancelled or taken over before it completed") from None

    def final_cost(self, delivered: int, requested: int) -> int | None:
        """What the outputs cost: the reservation, pro rata when fewer came than were asked for."""
        reserved = self.job.reserved_cost
        if reserved is None:
            return None
        return reserved * min(delivered, requested) // max(1, requested)

    async def drop_stored(self, keys: list[str]) -> None:
        """Remove media this run stored but could not complete with (best effort)."""
        for key in keys:
            with contextlib.suppress(Exception):
                await self.storage.delete(key)


async def claim(ctx: dict[str, Any], job_id: UUID) -> Job | None:
    """Move the job to processing for this run (change `job.started`), or None to run nothing."""
    store: Store = ctx["store"]
    settings: Settings = ctx["settings"]
    job = await get_job(store.db, job_id)
    if job is None:
        log.info("job %s: gone (its node or project was deleted)", job_id)
        return None
    if job.status in FINAL_STATUSES:
        log.info("job %s: already %s; duplicate delivery runs nothing", job_id, job.status)
        return None
    job_try = int(ctx.get("job_try") or 1)
    take_over = job.status != JobStatus.PENDING
    if take_over:
        if job_try <= 1:
            # a first delivery of a job another run is processing: not ours to touch
            log.info("job %s: already processing; duplicate delivery runs nothing", job_id)
            return None
        if job.attempts >= max(1, settings.job_max_tries):
            await fail_job(
                store,
                job,
                f"gave up after {job.attempts} attempts: the worker running it stopped",
                attempt=job.attempts,
            )
            return None
        log.info("job %s: taking over after attempt %d (arq try %d)", job_id, job.attempts, job_try)
    try:
        return await start_job(store, job, take_over=take_over)
    except GuardFailed:
        log.info("job %s: changed under us (cancelled or claimed); running nothing", job_id)
        return None


async def run_job(
    ctx: dict[str, Any], job_id: str, make_run: Callable[[dict[str, Any], Job], Run]
) -> str:
    """Claim the job and run it with `make_run`'s Run; returns what happened, for arq's log."""
    token = logs.job_id.set(job_id)
    try:
        try:
            job = await claim(ctx, UUID(job_id))
        except Exception as exc:
            # Postgres unreachable (a restart): raised on, arq would drop the job and leave
            # the row to the sweeper's next pass; a retry claims it once Postgres is back
            job_try = int(ctx.get("job_try") or 1)
            settings: Settings = ctx["settings"]
            defer_s = retry_delay_s(settings.job_retry_base_s, job_try)
            log.warning("job %s: cannot claim it (%r); retrying in %.1f s", job_id, exc, defer_s)
            raise Retry(defer=defer_s) from exc
        if job is None:
            return "nothing to do"
        logs.project_id.set(str(job.project_id))
        return await make_run(ctx, job).run()
    finally:
        logs.job_id.reset(token)
