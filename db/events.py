"""The events table: the durable log of every seq'd change, and the project snapshot."""

from __future__ import annotations

from uuid import UUID

from common.protocol.events import AnyEvent, Event, decode_payload
from common.protocol.frames import SNAPSHOT_TAKES, Snapshot
from db.connections import list_connections
from db.estimates import DEFAULT_SLOTS, queue_figures
from db.jobs import job_view, latest_jobs_for_project
from db.members import list_members
from db.nodes import list_nodes
from db.pool import Database
from db.takes import snapshot_takes


async def events_after(
    db: Database,
    project_id: UUID,
    after_seq: int,
    until_seq: int | None = None,
    limit: int = 10_000,
) -> list[AnyEvent]:
    """Logged events with `after_seq < seq <= until_seq`, in seq order."""
    rows = await db.fetch_all(
        # data as text: decoded once, straight into the struct of its kind
        "SELECT project_id, seq, kind, data::text AS data FROM events "
        "WHERE project_id = :p AND seq > :a AND (CAST(:u AS bigint) IS NULL OR seq <= :u) "
        "ORDER BY seq LIMIT :lim",
        {"p": project_id, "a": after_seq, "u": until_seq, "lim": limit},
    )
    return [
        Event(
            project_id=r["project_id"],
            seq=int(r["seq"]),
            kind=r["kind"],
            data=decode_payload(r["kind"], r["data"]),
        )
        for r in rows
    ]


async def oldest_logged_seq(db: Database, project_id: UUID) -> int | None:
    """The smallest seq still in the log, or None when the log of the project is empty."""
    seq = await db.fetch_val("SELECT min(seq) FROM events WHERE project_id = :p", {"p": project_id})
    return None if seq is None else int(seq)


async def read_snapshot(
    db: Database, project_id: UUID, slots: int = DEFAULT_SLOTS
) -> Snapshot | None:
    """Nodes, connections, latest jobs, recent takes and members, as of the seq they reflect.

    Live jobs carry their queue position and ETA as of now (`slots`: the workers' job slots).
    """
    # REPEATABLE READ: every SELECT below sees the same committed state
    async with db.transaction(isolation="repeatable_read", readonly=True):
        seq = await db.fetch_val("SELECT seq FROM projects WHERE id = :id", {"id": project_id})
        if seq is None:
            return None
        nodes = await list_nodes(db, project_id)
        connections = await list_connections(db, project_id)
        jobs = await latest_jobs_for_project(db, project_id)
        takes = await snapshot_takes(db, project_id, SNAPSHOT_TAKES)
        members = await list_members(db, project_id)
        figures = await queue_figures(db, jobs, slots)
    return Snapshot(
        project_id=project_id,
        seq=int(seq),
        nodes=nodes,
        connections=connections,
        jobs=[job_view(j, figures.get(j.id)) for j in jobs],
        takes=takes,
        members=members,
    )


async def prune_events(db: Database, older_than_s: int) -> int:
    """Drop logged events older than `older_than_s`; returns how many."""
    rows = await db.fetch_all(
        "DELETE FROM events WHERE created_at < now() - make_interval(secs => :s) RETURNING 1",
        {"s": older_than_s},
    )
    return len(rows)
