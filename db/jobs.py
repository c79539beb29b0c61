"""The jobs table, and the job life-cycle changes that move a job and its node together.

Every status change of a job is one change of its project (db.changes): the
job row and its node are updated in the same transaction, guarded by the
status (and, for a worker's writes, the attempt number) the caller expects,
so a late or duplicate writer changes nothing.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from db import nodes as node_q
from db.changes import Store, publish_change
from db.nodes import Node, NodeStatus
from db.pool import Database
from db.rows import to_struct, to_structs

_COLUMNS = (
    "id, project_id, node_id, type, status, params, result, error, progress, "
    "provider_operation, attempts, deadline, created_at, updated_at"
)


class JobStatus(enum.StrEnum):
    """Where a job is in its life; should match job_status in schema.sql."""

    #: saved and enqueued, no worker has it yet
    PENDING = "pending"
    #: a worker is rendering it
    PROCESSING = "processing"
    #: the result is stored
    COMPLETED = "completed"
    #: it ended with `error`
    FAILED = "failed"
    #: a user stopped it
    CANCELLED = "cancelled"


LIVE_STATUSES = (JobStatus.PENDING, JobStatus.PROCESSING)
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(msgspec.Struct, frozen=True):
    """One generation request and its outcome."""

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
) -> Job | None:
    """Insert a pending job; None when the node has a live job already. Call inside a change."""
    row = await db.fetch_one(
        "INSERT INTO jobs (project_id, node_id, type, params, deadline) "
        "VALUES (:p, :n, :t, CAST(:params AS jsonb), now() + make_interval(secs => :timeout)) "
        # jobs_one_live_per_node: at most one pending or processing job a node
        "ON CONFLICT (node_id) WHERE status IN ('pending', 'processing') DO NOTHING "
        f"RETURNING {_COLUMNS}",
        {"p": project_id, "n": node_id, "t": type, "params": params, "timeout": timeout_s},
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
) -> Job | None:
    """Update a job, only if its status is one of `expect` (a guarded UPDATE).

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


# -- life-cycle changes: one db-rule change each, job and node together --


async def create_job(
    store: Store, node: Node, type: str, params: dict[str, Any], timeout_s: int
) -> tuple[Job, Node]:
    """Insert a pending job for `node` and set the node processing, as change `job.created`.

    Raises NodeBusy with the live job's id while the node has one.
    """

    async def apply() -> dict[str, Any]:
        # ON CONFLICT rather than a savepoint around a unique violation: two round
        # trips fewer on every submit
        job = await insert_job(store.db, node.project_id, node.id, type, params, timeout_s)
        if job is None:
            live = await live_job_for_node(store.db, node.id)
            raise NodeBusy(live.id if live is not None else UUID(int=0))
        updated = await node_q.update_node(
            store.db, node.id, status=NodeStatus.PROCESSING, clear_error=True
        )
        if updated is None:
            raise GuardFailed("the node is gone")
        return {"job": job, "node": updated}

    _, data = await publish_change(store, node.project_id, "job.created", apply)
    return data["job"], data["node"]


async def transition(
    store: Store,
    job: Job,
    kind: str,
    *,
    expect: tuple[JobStatus, ...],
    expect_attempts: int | None = None,
    status: JobStatus | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: float | None = None,
    add_attempt: bool = False,
    node_status: NodeStatus | None = None,
    node_error: str | None = None,
    node_data: dict[str, Any] | None = None,
) -> tuple[Job, Node | None]:
    """Change a job (guarded) and its node in one change `kind` with data `{job, node}`.

    Raises GuardFailed, having changed and published nothing, when the job is
    not in `expect` (or not on `expect_attempts`).
    """

    async def apply() -> dict[str, Any]:
        updated = await update_job(
            store.db,
            job.id,
            expect=expect,
            expect_attempts=expect_attempts,
            status=status,
            result=result,
            error=error,
            progress=progress,
            add_attempt=add_attempt,
        )
        if updated is None:
            raise GuardFailed(f"job {job.id} is not {'/'.join(expect)}")
        if node_status is not None or node_data is not None:
            node = await node_q.update_node(
                store.db,
                job.node_id,
                status=node_status,
                error_message=node_error,
                clear_error=node_error is None and node_status is not None,
                data_patch=node_data,
            )
        else:
            node = await node_q.get_node(store.db, job.node_id)
        return {"job": updated, "node": node}

    _, data = await publish_change(store, job.project_id, kind, apply)
    return data["job"], data["node"]


async def orphaned_processing_nodes(db: Database) -> list[tuple[UUID, UUID]]:
    """(project_id, node_id) of nodes marked processing that have no pending/processing job."""
    rows = await db.fetch_all(
        "SELECT n.project_id, n.id FROM nodes n WHERE n.status = 'processing' AND NOT EXISTS "
        "(SELECT 1 FROM jobs j WHERE j.node_id = n.id AND j.status IN ('pending', 'processing'))"
    )
    return [(r["project_id"], r["id"]) for r in rows]
