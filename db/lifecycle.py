"""The job life cycle: every allowed move of a job, and the one function that makes it.

    (submit) ──▶ pending ──start──▶ processing ──complete──▶ completed
                    │                 │  ▲
                    │                 │  └─take_over (a retry, or another worker)
                    └──fail/cancel──▶ └──fail/cancel──▶ failed | cancelled

Each move is one change of the job's project (db.changes): the job row and
its node are written in the same transaction, guarded by the statuses the
move starts from and, for a worker's writes, by the attempt number of its
run, so a late or duplicate writer changes nothing (GuardFailed). The web
process (submit, cancel), the worker (start, take_over, complete, fail) and
the sweeper (fail, and the take-overs it enqueues) all move jobs only through
this module; `TRANSITIONS` is the table docs/protocol.md describes.

Money and time ride the same changes: SUBMIT reserves the job's cost on its
user's budget (db/budgets.py) and claims its Idempotency-Key; the terminal
moves close the reservation — COMPLETE settles what the job cost, FAIL and
CANCEL release it — and COMPLETE adds the run time to its kind's measured
durations (db/estimates.py). Being inside the guarded move, each happens once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from common.metrics import ETA_ACTUAL, ETA_ERROR, ETA_ESTIMATED, JOB_DURATION, JOBS
from common.protocol.entities import FINAL_STATUSES, JobStatus, Node, NodeStatus
from common.protocol.events import (
    JobCancelled,
    JobChange,
    JobCompleted,
    JobCreated,
    JobFailed,
    JobStarted,
)
from db import budgets
from db import nodes as node_q
from db.budgets import Budget
from db.changes import Store, publish_change
from db.estimates import record_duration
from db.idempotency import Claim, bind_key, claim_key
from db.jobs import GuardFailed, Job, NodeBusy, insert_job, job_view, live_job_for_node, update_job
from db.takes import NewTake, Take, insert_takes

#: the longest wait between two tries of a job
MAX_BACKOFF_S = 120.0


@dataclass(frozen=True)
class Transition:
    """One allowed move: from which statuses, to which, the event it makes, the node's status."""

    name: str
    event: type[JobChange]
    source: frozenset[JobStatus]
    target: JobStatus
    #: what the node becomes; None leaves it as it is
    node_status: NodeStatus | None


P, R = JobStatus.PENDING, JobStatus.PROCESSING
#: a new job: from nothing to pending, its node to processing
SUBMIT = Transition("submit", JobCreated, frozenset(), P, NodeStatus.PROCESSING)
#: a worker claims a pending job
START = Transition("start", JobStarted, frozenset({P}), R, None)
#: a worker takes over a job whose run died, stopped or asked for a retry
TAKE_OVER = Transition("take_over", JobStarted, frozenset({R}), R, None)
COMPLETE = Transition(
    "complete", JobCompleted, frozenset({R}), JobStatus.COMPLETED, NodeStatus.COMPLETED
)
FAIL = Transition("fail", JobFailed, frozenset({P, R}), JobStatus.FAILED, NodeStatus.FAILED)
CANCEL = Transition("cancel", JobCancelled, frozenset({P, R}), JobStatus.CANCELLED, NodeStatus.IDLE)
TRANSITIONS = (SUBMIT, START, TAKE_OVER, COMPLETE, FAIL, CANCEL)


def retry_delay_s(base_s: float, attempt: int) -> float:
    """The one backoff policy of jobs: `base_s` doubled per attempt (1-based), capped."""
    return float(min(MAX_BACKOFF_S, base_s * 2 ** max(0, attempt - 1)))


def _count(job: Job) -> None:
    """Metrics of a job that just reached `job.status`."""
    JOBS.labels(job.type, job.status.value).inc()
    if job.status in FINAL_STATUSES:
        JOB_DURATION.labels(job.type, job.status.value).observe(
            (datetime.now(UTC) - job.created_at).total_seconds()
        )


async def submit_job(
    store: Store,
    node: Node,
    type: str,
    params: dict[str, Any],
    timeout_s: int,
    created_by: UUID | None = None,
    guard: Callable[[], Awaitable[object]] | None = None,
    *,
    cost: int | None = None,
    budget: Budget | None = None,
    duration_key: str | None = None,
    idempotency: Claim | None = None,
) -> tuple[Job, Node]:
    """Insert a pending job for `node` and set the node processing (event `job.created`).

    `created_by` is the user who pressed Generate (JobStatusResponse.created_by);
    `guard` runs first inside the change (the caller's access re-check).
    `cost` is reserved on `budget` in the same transaction; `idempotency` claims
    the request's key for this job.
    Raises NodeBusy with the live job's id while the node has one, GuardFailed
    when the node is gone, BudgetExceeded when the cost does not fit, KeyTaken
    when another request holds the key — each having changed nothing.
    """

    created: Job | None = None

    async def apply(seq: int) -> JobCreated:
        nonlocal created
        if guard is not None:
            await guard()
        if idempotency is not None:
            # before the node's busy check: a repeat of a running request is not a conflict
            await claim_key(store.db, idempotency)
        # ON CONFLICT rather than a savepoint around a unique violation: two round
        # trips fewer on every submit
        job = await insert_job(
            store.db,
            node.project_id,
            node.id,
            type,
            params,
            timeout_s,
            created_by,
            reserved_cost=cost if budget is not None else None,
            duration_key=duration_key,
        )
        if job is None:
            live = await live_job_for_node(store.db, node.id)
            raise NodeBusy(live.id if live is not None else UUID(int=0))
        if budget is not None:
            await budgets.reserve(store.db, job.id, budget, cost or 0)
        if idempotency is not None:
            await bind_key(store.db, idempotency, job.id)
        updated = await node_q.update_node(
            store.db, node.id, version=seq, status=SUBMIT.node_status, clear_error=True
        )
        if updated is None:
            raise GuardFailed("the node is gone")
        created = job
        return JobCreated(job=job_view(job), node=updated)

    change = await publish_change(store, node.project_id, apply)
    assert created is not None
    _count(created)
    if budget is not None:
        budgets.count_reservation(cost or 0)
    return created, change.data.node


async def move(
    store: Store,
    job: Job,
    transition: Transition,
    *,
    attempt: int | None = None,
    add_attempt: bool = False,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: float | None = None,
    node_data: dict[str, Any] | None = None,
    outputs: list[NewTake] | None = None,
    media_field: str = "",
    guard: Callable[[], Awaitable[object]] | None = None,
    final_cost: int | None = None,
) -> tuple[Job, Node]:
    """Make `transition` happen to `job` and its node, as one change.

    A terminal move closes the job's reservation: COMPLETE settles `final_cost`
    (else what it reserved), FAIL and CANCEL release it.
    `guard`, when given, runs first inside the change (a user's access re-check).
    `outputs` (COMPLETE only) become takes of the node in the same change; the
    first one turns active, its key written to the node's `media_field`.
    `attempt` guards a worker's move: the job must still be on that attempt.
    Raises GuardFailed, having changed and published nothing, when the job is
    not in the transition's source statuses (or not on `attempt`).
    """
    assert transition is not SUBMIT, "use submit_job"
    moved: Job | None = None
    closing: tuple[int, int] | None = None
    timing: tuple[float | None, float] | None = None
    final = transition.target in FINAL_STATUSES
    cost: int | None = None
    if final and job.reserved_cost is not None:
        spent = final_cost if final_cost is not None else job.reserved_cost
        cost = min(spent, job.reserved_cost) if transition is COMPLETE else 0

    async def apply(seq: int) -> JobChange:
        nonlocal moved, closing, timing
        if guard is not None:
            await guard()
        updated = await update_job(
            store.db,
            job.id,
            expect=tuple(sorted(transition.source)),
            expect_attempts=attempt,
            status=transition.target,
            result=result,
            error=error,
            progress=progress,
            add_attempt=add_attempt,
            started=transition in (START, TAKE_OVER),
            final_cost=cost,
        )
        if updated is None:
            raise GuardFailed(f"job {job.id} cannot {transition.name} from where it is")
        if final:
            # the status guard above lets this happen once; the ledger's key makes sure
            closing = await budgets.close(
                store.db, job.id, settle=transition is COMPLETE, final_cost=cost
            )
        if transition is COMPLETE and updated.duration_key is not None:
            timing = await record_duration(store.db, job.id, updated.duration_key)
        takes: list[Take] = []
        if outputs:
            takes = await insert_takes(
                store.db,
                job.project_id,
                job.node_id,
                job.id,
                author_of(job),
                outputs,
                version=seq,
            )
        if transition.node_status is not None or node_data is not None or takes:
            data = dict(node_data or {})
            if takes:
                data[media_field] = takes[0].media_key
            node = await node_q.update_node(
                store.db,
                job.node_id,
                version=seq,
                status=transition.node_status,
                error_message=error if transition is FAIL else None,
                clear_error=transition is not FAIL and transition.node_status is not None,
                data_patch=data or None,
                set_active_take=bool(takes),
                active_take_id=takes[0].id if takes else None,
            )
        else:
            node = await node_q.get_node(store.db, job.node_id)
        moved = updated
        if node is None:
            raise GuardFailed(f"the node of job {job.id} is gone")
        if transition is COMPLETE:
            return JobCompleted(job=job_view(updated), node=node, takes=takes)
        return transition.event(job=job_view(updated), node=node)

    change = await publish_change(store, job.project_id, apply)
    assert moved is not None
    _count(moved)
    if closing is not None:
        budgets.count_closing(*closing)
    if timing is not None:
        _count_eta(moved.type, *timing)
    return moved, change.data.node


def _count_eta(job_type: str, estimated_s: float | None, actual_s: float) -> None:
    """Metrics of a completed job's run time against what its kind's mean predicted."""
    ETA_ACTUAL.labels(job_type).observe(actual_s)
    if estimated_s is not None and actual_s > 0:
        ETA_ESTIMATED.labels(job_type).observe(estimated_s)
        ETA_ERROR.labels(job_type).observe(abs(estimated_s - actual_s) / actual_s)


async def start_job(store: Store, job: Job, *, take_over: bool = False) -> Job:
    """Claim `job` for a new run (attempt + 1); GuardFailed when someone else did first."""
    transition = TAKE_OVER if take_over else START
    started, _ = await move(store, job, transition, attempt=job.attempts, add_attempt=True)
    return started


def author_of(job: Job) -> UUID | None:
    """Who submitted the job (recorded in its params at submit), when known."""
    author = job.params.get("author_id")
    return UUID(author) if isinstance(author, str) else None


async def complete_job(
    store: Store,
    job: Job,
    *,
    attempt: int,
    result: dict[str, Any],
    outputs: list[NewTake],
    media_field: str,
    final_cost: int | None = None,
) -> Job:
    """The run on `attempt` stored its outputs: job completed, each a take, the first active.

    `final_cost` is what the outputs cost (None: what the job reserved).
    """
    done, _ = await move(
        store,
        job,
        COMPLETE,
        attempt=attempt,
        result=result,
        progress=1.0,
        outputs=outputs,
        media_field=media_field,
        final_cost=final_cost,
    )
    return done


async def fail_job(store: Store, job: Job, message: str, *, attempt: int | None = None) -> bool:
    """Fail the job (and its node) with `message`; False when it had moved on already.

    With `attempt` only the run on that attempt may fail it (a worker's run);
    without, any live job can be failed (the sweeper's time-outs).
    """
    try:
        await move(store, job, FAIL, attempt=attempt, error=message)
    except GuardFailed:
        return False
    return True


async def cancel_job(
    store: Store, job: Job, guard: Callable[[], Awaitable[object]] | None = None
) -> Job:
    """A user stopped the job: cancelled, node idle. GuardFailed if it had finished."""
    cancelled, _ = await move(store, job, CANCEL, error="cancelled by the user", guard=guard)
    return cancelled
