"""The sweeper: no job stays pending or processing forever, no node stays processing alone.

Runs as an arq cron on every worker (arq runs each tick once across them) and
is safe to run concurrently anyway: every change it makes is guarded. Each
pass:
1. fails jobs past their deadline ("timed out after N s");
2. enqueues pending jobs the queue does not hold (lost in a Redis outage, or
   never enqueued because Redis was down at submit);
3. hands processing jobs nobody holds (their worker died and the queue lost
   them) to a new worker as a takeover, or fails them when no tries remain;
4. gives nodes left processing without a live job their latest job's status;
5. prunes events older than a week and expired sessions.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, result_key_prefix
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus as ArqStatus
from redis.exceptions import RedisError

from common.config import Settings
from common.keys import queue_name
from common.metrics import QUEUE_DEPTH, SWEEPER_ACTIONS
from common.protocol.events import NodeUpdated
from db import nodes as node_q
from db.changes import Store, publish_change
from db.events import prune_events
from db.jobs import (
    Job,
    JobStatus,
    latest_job_for_node,
    live_job_for_node,
    live_jobs,
    orphaned_processing_nodes,
)
from db.lifecycle import fail_job
from db.nodes import NodeStatus
from db.sessions import delete_expired_sessions
from tasks.queue import abort_job, enqueue_job
from tasks.runs import timeout_message

log = logging.getLogger(__name__)

#: events are kept this long for clients resuming with `since`; older ones resync from a snapshot
EVENT_RETENTION_S = 7 * 24 * 3600


@dataclass
class SweepReport:
    """What one pass did, by job or node id."""

    enqueued: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    nodes_reset: list[str] = field(default_factory=list)
    events_pruned: int = 0
    sessions_pruned: int = 0


class _Unchanged(Exception):
    """The node got a live job (or left processing) before the sweeper's change: skip it."""


async def _queue_state(queue: ArqRedis, namespace: str, job_id: UUID) -> ArqStatus:
    """arq's view of the job; a run still holding its in-progress key counts as in progress."""
    status = await ArqJob(str(job_id), queue, _queue_name=queue_name(namespace)).status()
    # status() reports `complete` before `in_progress`: a stopped duplicate's result can sit
    # beside a live run's key, and that run is very much alive
    if status == ArqStatus.complete and await queue.exists(in_progress_key_prefix + str(job_id)):
        return ArqStatus.in_progress
    return status


async def _enqueue_again(
    queue: ArqRedis, namespace: str, job: Job, status: ArqStatus, job_try: int | None
) -> bool:
    if status == ArqStatus.complete:
        # arq keeps a finished run's result for an hour and refuses that id meanwhile;
        # the row says the job is not finished, so the result is stale
        await queue.delete(result_key_prefix + str(job.id))
    return await enqueue_job(queue, namespace, job.type, job.id, job_try=job_try)


async def _sweep_job(
    store: Store, queue: ArqRedis, settings: Settings, job: Job, report: SweepReport
) -> None:
    ns = store.namespace
    if job.deadline is not None and job.deadline <= datetime.now(UTC):
        if await fail_job(store, job, timeout_message(job), attempt=job.attempts):
            report.timed_out.append(str(job.id))
            await abort_job(queue, ns, job.id)
        return
    status = await _queue_state(queue, ns, job.id)
    if status in (ArqStatus.in_progress, ArqStatus.queued, ArqStatus.deferred):
        # a worker runs it, or one will pick it up (a takeover after a death, or a retry)
        return
    if job.status == JobStatus.PENDING:
        if await _enqueue_again(queue, ns, job, status, None):
            report.enqueued.append(str(job.id))
        return
    # processing, and nobody holds it: its worker died and the queue lost the job
    if job.attempts >= max(1, settings.job_max_tries):
        if await fail_job(
            store,
            job,
            f"gave up after {job.attempts} attempts: the worker running it stopped",
            attempt=job.attempts,
        ):
            report.gave_up.append(str(job.id))
        return
    # job_try > 1 tells the run it is a takeover, not a duplicate delivery
    if await _enqueue_again(queue, ns, job, status, job.attempts + 1):
        report.taken_over.append(str(job.id))


async def _reset_node(store: Store, project_id: UUID, node_id: UUID) -> bool:
    """Give a processing node without a live job its latest job's status (change `node.updated`)."""

    async def apply(seq: int) -> NodeUpdated:
        # re-checked under the project's lock: a submit may have just given it a job
        node = await node_q.get_node(store.db, node_id)
        if node is None or node.status != NodeStatus.PROCESSING:
            raise _Unchanged()
        if await live_job_for_node(store.db, node_id) is not None:
            raise _Unchanged()
        latest = await latest_job_for_node(store.db, node_id)
        error = None
        status = NodeStatus.IDLE
        if latest is not None and latest.status == JobStatus.COMPLETED:
            status = NodeStatus.COMPLETED
        elif latest is not None and latest.status == JobStatus.FAILED:
            status, error = NodeStatus.FAILED, latest.error or "generation failed"
        updated = await node_q.update_node(
            store.db,
            node_id,
            version=seq,
            status=status,
            error_message=error,
            clear_error=error is None,
        )
        if updated is None:
            raise _Unchanged()
        return NodeUpdated(node=updated)

    try:
        await publish_change(store, project_id, apply)
    except _Unchanged:
        return False
    return True


async def sweep(store: Store, queue: ArqRedis, settings: Settings) -> SweepReport:
    """One pass of the sweeper; see the module docstring."""
    report = SweepReport()
    for job in await live_jobs(store.db):
        try:
            await _sweep_job(store, queue, settings, job, report)
        except (RedisError, OSError, TimeoutError) as exc:
            # Redis is down: the row is safe in Postgres, and the next pass tries again
            log.warning("sweeper: job %s left for the next pass: %s", job.id, exc)
    for project_id, node_id in await orphaned_processing_nodes(store.db):
        if await _reset_node(store, project_id, node_id):
            report.nodes_reset.append(str(node_id))
    # with Redis down the gauge keeps its last value (the jobs above logged the outage)
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        QUEUE_DEPTH.set(await queue.zcard(queue_name(store.namespace)))
    report.events_pruned = await prune_events(store.db, EVENT_RETENTION_S)
    report.sessions_pruned = await delete_expired_sessions(store.db)
    for action in ("enqueued", "taken_over", "timed_out", "gave_up", "nodes_reset"):
        count = len(getattr(report, action))
        if count:
            SWEEPER_ACTIONS.labels(action).inc(count)
            log.info("sweeper: %s %s", action, ", ".join(getattr(report, action)))
    return report


async def sweep_cron(ctx: dict[str, Any]) -> dict[str, Any]:
    """arq cron entry: one sweep with the worker's clients; returns the report."""
    report = await sweep(ctx["store"], ctx["redis"], ctx["settings"])
    return asdict(report)
