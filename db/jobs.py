"""The jobs table: rows, reads and the guarded UPDATE.

Status changes are not made here but in db/lifecycle.py, which names every
allowed move and makes each one change of the project (job and node together).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from common.prices import CURRENCY, to_amount
from common.protocol.entities import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    Actor,
    JobStatus,
    JobStatusResponse,
)
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["FINAL_STATUSES", "LIVE_STATUSES", "JobStatus"]

_COLUMNS = (
    "id, project_id, node_id, type, status, params, result, error, progress, "
    "provider_operation, attempts, deadline, created_at, updated_at, created_by, "
    "reserved_cost, final_cost, duration_key, started_at, progress_estimated, "
    # correlated, so every SELECT and RETURNING below names the author the same way
    "(SELECT u.email FROM users u WHERE u.id = jobs.created_by) AS created_by_email"
)


class Job(msgspec.Struct, frozen=True):
    """One generation request and its outcome: the row, with what only workers need."""

    id: UUID
    project_id: UUID
    node_id: UUID
    type: str
    status: JobStatus
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    progress: float
    provider_operation: str | None
    attempts: int
    deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    #: who submitted it (None for jobs from before teams, or a deleted account)
    created_by: UUID | None = None
    created_by_email: str | None = None
    #: micro-units of the currency (common/prices.py) reserved at submit; None before budgets
    reserved_cost: int | None = None
    #: micro-units it finally cost, set by its terminal transition
    final_cost: int | None = None
    #: the kind its duration is measured as (db/estimates.py)
    duration_key: str | None = None
    #: when a worker first started it
    started_at: datetime | None = None
    progress_estimated: bool = False


class QueueFigures(msgspec.Struct, frozen=True):
    """Where a live job stands: its queue position (pending) and its ETA (db/estimates.py)."""

    queue_position: int | None = None
    eta_s: float | None = None


def job_view(job: Job, figures: QueueFigures | None = None) -> JobStatusResponse:
    """The job as clients see it (URLs are signed later, by the presenter).

    `figures` (queue position, ETA) are read apart, where the view is sent now;
    the views that events carry have none, the ticks bring them.
    """
    live = job.status in LIVE_STATUSES
    return JobStatusResponse(
        job_id=job.id,
        node_id=job.node_id,
        project_id=job.project_id,
        type=job.type,
        status=job.status,
        progress=job.progress,
        result=job.result,
        error=job.error,
        created_at=job.created_at,
        updated_at=job.updated_at,
        created_by=None
        if job.created_by is None or job.created_by_email is None
        else Actor(user_id=job.created_by, email=job.created_by_email),
        queue_position=figures.queue_position if figures is not None and live else None,
        eta_s=figures.eta_s if figures is not None and live else None,
        progress_estimated=job.progress_estimated,
        reserved_cost=None if job.reserved_cost is None else to_amount(job.reserved_cost),
        final_cost=None if job.final_cost is None else to_amount(job.final_cost),
        currency=CURRENCY,
    )


class NodeBusy(Exception):
    """The node already has a pending or processing job."""

    def __init__(self, job_id: UUID) -> None:
        super().__init__(str(job_id))
        self.job_id = job_id


class GuardFailed(Exception):
    """The job was not in the status (or attempt) a change expected: nothing was changed."""


async def get_job(db: Database, job_id: UUID) -> Job | None:
    """One job by id."""
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM jobs WHERE id = :id", {"id": job_id})
    return None if row is None else to_struct(Job, row)


async def latest_job_for_node(db: Database, node_id: UUID) -> Job | None:
    """The node's most recent job, or None."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM jobs WHERE node_id = :n ORDER BY created_at DESC, id DESC LIMIT 1",
        {"n": node_id},
    )
    return None if row is None else to_struct(Job, row)


async def latest_jobs_for_project(db: Database, project_id: UUID) -> list[Job]:
    """The most recent job of every node of the project."""
    rows = await db.fetch_all(
        f"SELECT DISTINCT ON (node_id) {_COLUMNS} FROM jobs WHERE project_id = :p "
        "ORDER BY node_id, created_at DESC, id DESC",
        {"p": project_id},
    )
    return to_structs(Job, rows)


async def live_job_for_node(db: Database, node_id: UUID) -> Job | None:
    """The node's pending or processing job, or None."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM jobs WHERE node_id = :n AND status IN ('pending', 'processing')",
        {"n": node_id},
    )
    return None if row is None else to_struct(Job, row)


async def insert_job(
    db: Database,
    project_id: UUID,
    node_id: UUID,
    type: str,
    params: dict[str, Any],
    timeout_s: int,
    created_by: UUID | None = None,
    reserved_cost: int | None = None,
    duration_key: str | None = None,
) -> Job | None:
    """Insert a pending job; None when the node has a live job already. Call inside a change."""
    row = await db.fetch_one(
        "INSERT INTO jobs (project_id, node_id, type, params, deadline, created_by, "
        "reserved_cost, duration_key) "
        "VALUES (:p, :n, :t, CAST(:params AS jsonb), now() + make_interval(secs => :timeout), "
        ":by, :cost, :dkey) "
        # jobs_one_live_per_node: at most one pending or processing job a node
        "ON CONFLICT (node_id) WHERE status IN ('pending', 'processing') DO NOTHING "
        f"RETURNING {_COLUMNS}",
        {
            "p": project_id,
            "n": node_id,
            "t": type,
            "params": params,
            "timeout": timeout_s,
            "by": created_by,
            "cost": reserved_cost,
            "dkey": duration_key,
        },
    )
    return None if row is None else to_struct(Job, row)


async def update_job(
    db: Database,
    job_id: UUID,
    *,
    expect: tuple[JobStatus, ...] | None = None,
    status: JobStatus | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: float | None = None,
    provider_operation: str | None = None,
    add_attempt: bool = False,
    deadline_in_s: int | None = None,
    expect_attempts: int | None = None,
    started: bool = False,
    final_cost: int | None = None,
    progress_estimated: bool | None = None,
) -> Job | None:
    """Update a job, only if its status is one of `expect` (a guarded UPDATE).

    `started` records the first start; `final_cost` what it cost, once it ends.

    With `expect_attempts` the job must also still be on that attempt: a
    worker whose run was taken over by another can no longer write.
    Returns the updated job, or None when the guard did not hold.
    """
    guard = ""
    values: dict[str, Any] = {
        "id": job_id,
        "s": None if status is None else status.value,
        "r": result,
        "e": error,
        "pr": progress,
        "op": provider_operation,
        "att": 1 if add_attempt else 0,
        "dl": deadline_in_s,
        "started": started,
        "fc": final_cost,
        "pe": progress_estimated,
    }
    if expect is not None:
        guard = " AND status = ANY(CAST(:expect AS job_status[]))"
        values["expect"] = [s.value for s in expect]
    if expect_attempts is not None:
        guard += " AND attempts = :expect_att"
        values["expect_att"] = expect_attempts
    row = await db.fetch_one(
        "UPDATE jobs SET "
        "status = COALESCE(CAST(:s AS job_status), status), "
        "result = COALESCE(CAST(:r AS jsonb), result), "
        "error = COALESCE(:e, error), "
        "progress = COALESCE(CAST(:pr AS real), progress), "
        "provider_operation = COALESCE(:op, provider_operation), "
        "attempts = attempts + :att, "
        "deadline = COALESCE(now() + make_interval(secs => CAST(:dl AS double precision)), "
        "deadline), "
        "started_at = CASE WHEN :started THEN COALESCE(started_at, now()) ELSE started_at END, "
        "final_cost = COALESCE(CAST(:fc AS bigint), final_cost), "
        "progress_estimated = COALESCE(CAST(:pe AS boolean), progress_estimated), "
        f"updated_at = now() WHERE id = :id{guard} RETURNING {_COLUMNS}",
        values,
    )
    return None if row is None else to_struct(Job, row)


async def live_jobs(db: Database) -> list[Job]:
    """Every pending or processing job, oldest first (the sweeper's scan)."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM jobs WHERE status IN ('pending', 'processing') "
        "ORDER BY updated_at, id"
    )
    return to_structs(Job, rows)


async def orphaned_processing_nodes(db: Database) -> list[tuple[UUID, UUID]]:
    """(project_id, node_id) of nodes marked processing that have no pending/processing job."""
    rows = await db.fetch_all(
        "SELECT n.project_id, n.id FROM nodes n WHERE n.status = 'processing' AND NOT EXISTS "
        "(SELECT 1 FROM jobs j WHERE j.node_id = n.id AND j.status IN ('pending', 'processing'))"
    )
    return [(r["project_id"], r["id"]) for r in rows]
