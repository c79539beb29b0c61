"""The one rule for every change of project state.

A change is applied, the project's `seq` bumped and the event appended to the
`events` log in ONE Postgres transaction; only after the commit is the event
published on the project's Redis channel. Bumping `projects.seq` first takes
the project's row lock, so changes of one project are serialised and their
seqs are consecutive in commit order. A change that raises rolls everything
back: the seq is untouched and nothing is published.

Publishing is best effort: the event is already durable in the log, and the
hub fills any gap in what Redis delivered from Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from common.keys import project_channel
from common.metrics import EVENTS_PUBLISHED
from db.pool import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class ProjectGone(Exception):
    """The project a change was aimed at does not exist (any more)."""


class Event(msgspec.Struct, frozen=True):
    """One seq'd change of a project, as logged and as published."""

    project_id: UUID
    seq: int
    kind: str
    data: Any


class Progress(msgspec.Struct, frozen=True, tag="job.progress", tag_field="type"):
    """An ephemeral progress tick: no seq, not logged, may be dropped."""

    project_id: UUID
    job_id: UUID
    progress: float


@dataclass(frozen=True)
class Store:
    """What every change needs: Postgres, Redis, and the key namespace."""

    db: Database
    redis: Redis
    namespace: str


_encode = msgspec.json.Encoder().encode


async def publish_change(
    store: Store,
    project_id: UUID,
    kind: str,
    apply: Callable[[], Awaitable[T]],
    *,
    log_event: bool = True,
) -> tuple[Event, T]:
    """Apply `apply` as one change of `project_id` and publish it as event `kind`.

    `apply` runs inside the transaction and returns the event's data. With
    `log_event=False` the event is not written to the log (used only when the
    project itself is deleted, which removes its log).
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
        data = await apply()
        # 3. the durable record that replay and gap filling read
        if log_event:
            await store.db.execute(
                "INSERT INTO events (project_id, seq, kind, data) "
                "VALUES (:project_id, :seq, :kind, CAST(:data AS json))",
                {"project_id": project_id, "seq": seq, "kind": kind, "data": _plain(data)},
            )
    # 4. after commit, and only then, tell the hubs
    event = Event(project_id=project_id, seq=int(seq), kind=kind, data=data)
    if await publish_raw(store, project_id, _encode(event)):
        EVENTS_PUBLISHED.labels(kind).inc()
    return event, data


async def publish_progress(store: Store, project_id: UUID, job_id: UUID, progress: float) -> None:
    """Publish an ephemeral progress tick of a job (no transaction, no seq)."""
    tick = Progress(project_id=project_id, job_id=job_id, progress=round(progress, 3))
    await publish_raw(store, project_id, _encode(tick))


async def publish_raw(store: Store, project_id: UUID, payload: bytes) -> bool:
    """Publish bytes on the project's channel; False (logged, not raised) if Redis failed."""
    try:
        await store.redis.publish(project_channel(store.namespace, project_id), payload)
    except Exception as exc:  # the change is committed; hubs recover it from the log
        log.warning("publish to project %s failed: %s", project_id, exc)
        return False
    return True


def _plain(data: Any) -> Any:
    """Structs become builtins (fields in order) for asyncpg's json codec to store."""
    return msgspec.to_builtins(data)


def decode_event(payload: bytes) -> Event | Progress:
    """Decode bytes published by this module back into an Event or a Progress tick."""
    raw = msgspec.json.decode(payload)
    if isinstance(raw, dict) and raw.get("type") == "job.progress":
        return msgspec.convert(raw, Progress)
    return msgspec.convert(raw, Event)
