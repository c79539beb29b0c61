"""Measured durations: queue positions, ETAs and estimated progress, from the job_durations table.

Each job is of one *kind* (`duration_key`: provider, model, mode, resolution,
duration), named at submit. When a job completes, its run time (first start
to completion) updates its kind's mean in the same transaction: a plain mean
of the first WINDOW samples, then an exponential one that follows the last
WINDOW or so, so a provider that gets slower is caught up with.

- queue position: a pending job's place among all pending jobs, in submit
  order (1 starts next);
- ETA: seconds until it should complete. Running: its kind's mean minus the
  time it has run. Pending: the mean plus a wait, 0 while the workers have a
  free slot for it, else what runs and waits ahead of it divided by the slots;
- estimated progress, for a provider that reports none (Veo): elapsed over
  the mean, rising to 0.9 at the mean and then ever more slowly towards
  MAX_ESTIMATED, so it never reaches 1 before the job completes.
A kind no job has finished yet has no ETA; its progress is estimated from a
prior (PRIOR_S).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from db.jobs import Job, JobStatus, QueueFigures
from db.pool import Database

#: samples after which a kind's mean follows the newest ones (an exponential mean)
WINDOW = 20
#: the estimate of a kind nothing has measured yet, by job type (Veo: 11 s to 6 min)
PRIOR_S = {"video": 60.0, "image": 15.0}
DEFAULT_PRIOR_S = 60.0
#: job slots assumed when the caller knows none (CANVASFLOW_WORKER_MAX_JOBS's default)
DEFAULT_SLOTS = 10
#: estimated progress stays below this until the job completes
MAX_ESTIMATED = 0.99


def duration_key(job_type: str, provider: str, model: str, params: dict[str, Any]) -> str:
    """The kind of job whose durations `params` are measured with."""
    if job_type == "image":
        size, count = params.get("image_size", "1K"), params.get("number_of_images", 1)
        return f"{provider}|{model}|image|{size}|{count}"
    if params.get("extend_key"):
        mode = "extend"
    elif params.get("image_key") and params.get("last_frame_key"):
        mode = "interpolate"
    elif params.get("reference_keys"):
        mode = "reference"
    elif params.get("image_key"):
        mode = "image"
    else:
        mode = "text"
    return f"{provider}|{model}|{mode}|{params.get('resolution')}|{params.get('duration')}"


def prior_s(job_type: str) -> float:
    """What a job of `job_type` is assumed to take before any of its kind was measured."""
    return PRIOR_S.get(job_type, DEFAULT_PRIOR_S)


def estimated_progress(elapsed_s: float, expected_s: float) -> float:
    """Progress after `elapsed_s` of a job expected to take `expected_s`: monotonic, < 1."""
    if expected_s <= 0:
        return 0.0
    t = max(0.0, elapsed_s) / expected_s
    if t <= 1:
        return 0.9 * t
    return min(MAX_ESTIMATED, 0.9 + (MAX_ESTIMATED - 0.9) * (1 - math.exp(-(t - 1))))


async def record_duration(db: Database, job_id: UUID, key: str) -> tuple[float | None, float]:
    """Add the job's run time to its kind, inside COMPLETE: (the estimate before, the run time).

    The estimate before is None when nothing of the kind had been measured.
    """
    actual = await db.fetch_val(
        "SELECT GREATEST(0, extract(epoch FROM clock_timestamp() - started_at)) "
        "FROM jobs WHERE id = :j",
        {"j": job_id},
    )
    if actual is None:
        return None, 0.0
    before = await db.fetch_val(
        "SELECT mean_s FROM job_durations WHERE key = :k FOR UPDATE", {"k": key}
    )
    await db.execute(
        "INSERT INTO job_durations (key, samples, mean_s) VALUES (:k, 1, :x) "
        "ON CONFLICT (key) DO UPDATE SET samples = job_durations.samples + 1, "
        "mean_s = job_durations.mean_s + (EXCLUDED.mean_s - job_durations.mean_s) "
        "/ LEAST(job_durations.samples + 1, :window), updated_at = now()",
        {"k": key, "x": float(actual), "window": WINDOW},
    )
    return (None if before is None else float(before)), float(actual)


async def expected_s(db: Database, key: str | None) -> float | None:
    """The measured mean duration of a kind, or None when none of it has finished."""
    if key is None:
        return None
    value = await db.fetch_val("SELECT mean_s FROM job_durations WHERE key = :k", {"k": key})
    return None if value is None else float(value)


def _prior_sql() -> str:
    cases = " ".join(f"WHEN '{t}' THEN {s}" for t, s in PRIOR_S.items())
    return f"(CASE j.type {cases} ELSE {DEFAULT_PRIOR_S} END)"


def _pending_sql() -> str:
    """Every pending job with its position, its kind's mean and the expected work ahead of it."""
    return (
        "SELECT j.id, j.project_id, row_number() OVER w AS position, d.mean_s, "
        f"COALESCE(sum(COALESCE(d.mean_s, {_prior_sql()})) OVER (w ROWS BETWEEN UNBOUNDED "
        "PRECEDING AND 1 PRECEDING), 0) AS ahead_s, j.created_at "
        "FROM jobs j LEFT JOIN job_durations d ON d.key = j.duration_key "
        "WHERE j.status = 'pending' WINDOW w AS (ORDER BY j.created_at, j.id)"
    )


async def pending_positions(db: Database, limit: int) -> list[dict[str, Any]]:
    """The first `limit` pending jobs in queue order: id, project, position, mean, time ahead."""
    rows = await db.fetch_all(
        f"SELECT * FROM ({_pending_sql()}) q ORDER BY position LIMIT :limit", {"limit": limit}
    )
    return [dict(r._mapping) for r in rows]


async def pending_count(db: Database) -> int:
    """How many jobs are pending."""
    return int(await db.fetch_val("SELECT count(*) FROM jobs WHERE status = 'pending'") or 0)


async def running_load(db: Database) -> tuple[int, float]:
    """How many jobs run now, and the seconds of work they are expected to have left."""
    row = await db.fetch_one(
        "SELECT count(*) AS n, COALESCE(sum(GREATEST(0, "
        f"COALESCE(d.mean_s, {_prior_sql()}) - extract(epoch FROM now() - "
        "COALESCE(j.started_at, j.updated_at)))), 0) AS left_s "
        "FROM jobs j LEFT JOIN job_durations d ON d.key = j.duration_key "
        "WHERE j.status = 'processing'"
    )
    assert row is not None
    return int(row["n"]), float(row["left_s"])


def pending_eta(
    mean_s: float | None, position: int, ahead_s: float, running: tuple[int, float], slots: int
) -> float | None:
    """ETA of a pending job: its mean, plus the wait for a slot once every slot is taken."""
    if mean_s is None:
        return None
    count, left_s = running
    slots = max(1, slots)
    wait_s = 0.0 if count + position <= slots else (left_s + ahead_s) / slots
    return round(mean_s + wait_s, 1)


def running_eta(mean_s: float | None, started_at: datetime | None) -> float | None:
    """ETA of a running job: what its kind's mean leaves of the time it has run (0: any time)."""
    if mean_s is None or started_at is None:
        return None
    elapsed = (datetime.now(UTC) - started_at).total_seconds()
    return round(max(0.0, mean_s - elapsed), 1)


async def queue_figures(db: Database, jobs: Iterable[Job], slots: int) -> dict[UUID, QueueFigures]:
    """Queue position and ETA of each live job of `jobs`, read now (REST answers, snapshots)."""
    live = [j for j in jobs if j.status in (JobStatus.PENDING, JobStatus.PROCESSING)]
    if not live:
        return {}
    figures: dict[UUID, QueueFigures] = {}
    pending = [j for j in live if j.status == JobStatus.PENDING]
    if pending:
        if len(pending) == 1:
            # one job (a REST answer): count what is ahead of it on the index, no window
            rows = await db.fetch_all(
                "SELECT CAST(:id AS uuid) AS id, count(*) + 1 AS position, "
                "(SELECT mean_s FROM job_durations WHERE key = :key) AS mean_s, "
                f"COALESCE(sum(COALESCE(d.mean_s, {_prior_sql()})), 0) AS ahead_s "
                "FROM jobs j LEFT JOIN job_durations d ON d.key = j.duration_key "
                "WHERE j.status = 'pending' "
                "AND (j.created_at, j.id) < (:created, CAST(:id AS uuid))",
                {
                    "id": pending[0].id,
                    "key": pending[0].duration_key,
                    "created": pending[0].created_at,
                },
            )
        else:
            rows = await db.fetch_all(
                f"SELECT * FROM ({_pending_sql()}) q WHERE q.id = ANY(CAST(:ids AS uuid[]))",
                {"ids": [j.id for j in pending]},
            )
        running = await running_load(db)
        for r in rows:
            mean = None if r["mean_s"] is None else float(r["mean_s"])
            eta = pending_eta(mean, int(r["position"]), float(r["ahead_s"]), running, slots)
            figures[r["id"]] = QueueFigures(queue_position=int(r["position"]), eta_s=eta)
    for job in live:
        if job.status == JobStatus.PROCESSING:
            mean = await expected_s(db, job.duration_key)
            figures[job.id] = QueueFigures(eta_s=running_eta(mean, job.started_at))
    return figures
