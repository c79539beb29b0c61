"""The one rule for every change of project state.

A change is applied, the project's `seq` bumped and the event appended to the
`events` log in ONE Postgres transaction; only after the commit is the event
published on the project's Redis channel. Bumping `projects.seq` first takes
the project's row lock, so changes of one project are serialised and their
seqs are consecutive in commit order. A change that raises rolls everything
back: the seq is untouched and nothing is published.

The change's `apply` is handed the seq it will carry, so what it writes can
record it (`version` on nodes and connections), and returns the event's
payload: a struct of common/protocol/events.py, whose type names the kind.

Publishing is best effort: the event is already durable in the log, and the
hub fills any gap in what Redis delivered from Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from redis.asyncio import Redis

from common.keys import project_channel
from common.metrics import EVENTS_PUBLISHED
from common.protocol.events import Event, JobProgress, Payload, encode_bus, event_of
from db.pool import Database

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)


class ProjectGone(Exception):
    """The project a change was aimed at does not exist (any more)."""


@dataclass(frozen=True)
class Store:
    """What every change needs: Postgres, Redis, and the key namespace."""

    db: Database
    redis: Redis
    namespace: str


async def publish_change(
    store: Store,
    project_id: UUID,
    apply: Callable[[int], Awaitable[P]],
    *,
    log_event: bool = True,
) -> Event[P]:
    """Apply `apply(seq)` as one change of `project_id` and publish the event of its payload.

    With `log_event=False` the event is not written to the log (used only when
    the project itself is deleted, which removes its log).
    """
    async with store.db.transaction():
        # 1. take the project's row lock and the next seq in one statement
        seq = await store.db.fetch_val(
            "UPDATE projects SET seq = seq + 1, updated_at = now() WHERE id = :id RETURNING seq",
            {"id": project_id},
        )
        if seq is None:
            raise ProjectGone(str(project_id))
        # 2. the change itself; raising here rolls back the seq too
        data = await apply(int(seq))
        # 3. the durable record that replay and gap filling read
        if log_event:
            await store.db.execute(
                "INSERT INTO events (project_id, seq, kind, data) "
                # as text: the payload's JSON is stored as published, not re-encoded
                "VALUES (:project_id, :seq, :kind, CAST(CAST(:data AS text) AS json))",
                {
                    "project_id": project_id,
                    "seq": seq,
                    "kind": data.kind,
                    "data": encode_bus(data).decode(),
                },
            )
    # 4. after commit, and only then, tell the hubs
    event = event_of(project_id, int(seq), data)
    if await publish_raw(store, project_id, encode_bus(event)):
        EVENTS_PUBLISHED.labels(data.kind).inc()
    return event


async def publish_progress(
    store: Store,
    project_id: UUID,
    job_id: UUID,
    progress: float,
    *,
    estimated: bool = False,
    queue_position: int | None = None,
    eta_s: float | None = None,
) -> None:
    """Publish an ephemeral progress tick of a job (no transaction, no seq).

    `estimated` marks canvasflow's estimate; a pending job's tick carries its
    `queue_position`; `eta_s` the seconds left, when its kind has been measured.
    """
    tick = JobProgress(
        project_id=project_id,
        job_id=job_id,
        progress=round(progress, 3),
        estimated=estimated,
        queue_position=queue_position,
        eta_s=eta_s,
    )
    await publish_raw(store, project_id, encode_bus(tick))


async def publish_raw(store: Store, project_id: UUID, payload: bytes) -> bool:
    """Publish bytes on the project's channel; False (logged, not raised) if Redis failed."""
    try:
        await store.redis.publish(project_channel(store.namespace, project_id), payload)
    except Exception as exc:  # the change is committed; hubs recover it from the log
        log.warning("publish to project %s failed: %s", project_id, exc)
        return False
    return True
