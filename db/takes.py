"""The takes table: every output of a job, kept on its node. Writes happen inside a change."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from common.protocol.entities import Take
from db.connect import Database
from db.rows import to_struct, to_structs

__all__ = ["NewTake", "Take"]

_COLUMNS = (
    "id, project_id, node_id, job_id, idx AS index, media_key, mime_type, params, seed, "
    "created_by, created_at, version"
)
#: newest first: the change that made it, then its place in its job
_NEWEST_FIRST = "version DESC, idx, id"


class NewTake(msgspec.Struct, frozen=True, kw_only=True):
    """One output a job stored, to become a take when the job completes."""

    index: int
    media_key: str
    mime_type: str
    params: dict[str, Any]
    seed: int | None = None


async def insert_takes(
    db: Database,
    project_id: UUID,
    node_id: UUID,
    job_id: UUID,
    created_by: UUID | None,
    outputs: list[NewTake],
    *,
    version: int,
) -> list[Take]:
    """Insert a job's outputs as takes of its node, in index order; call inside a change."""
    takes = []
    for out in outputs:
        row = await db.fetch_one(
            "INSERT INTO takes (project_id, node_id, job_id, idx, media_key, mime_type, params, "
            "seed, created_by, version) VALUES (:p, :n, :j, :i, :k, :m, CAST(:params AS jsonb), "
            f":seed, :by, :v) RETURNING {_COLUMNS}",
            {
                "p": project_id,
                "n": node_id,
                "j": job_id,
                "i": out.index,
                "k": out.media_key,
                "m": out.mime_type,
                "params": out.params,
                "seed": out.seed,
                "by": created_by,
                "v": version,
            },
        )
        takes.append(to_struct(Take, row))
    return takes


async def get_take(db: Database, take_id: UUID) -> Take | None:
    """One take by id."""
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM takes WHERE id = :id", {"id": take_id})
    return None if row is None else to_struct(Take, row)


async def list_takes(
    db: Database, node_id: UUID, *, limit: int, before: Take | None = None
) -> list[Take]:
    """The node's takes, newest first; with `before`, only those older than that take."""
    values: dict[str, Any] = {"n": node_id, "lim": limit}
    after = ""
    if before is not None:
        # the row order is (version DESC, idx, id): "older" is whatever sorts after `before`
        after = " AND (version < :v OR (version = :v AND (idx > :i OR (idx = :i AND id > :id))))"
        values.update(v=before.version, i=before.index, id=before.id)
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM takes WHERE node_id = :n{after} "
        f"ORDER BY {_NEWEST_FIRST} LIMIT :lim",
        values,
    )
    return to_structs(Take, rows)


async def newest_take(db: Database, node_id: UUID) -> Take | None:
    """The node's newest take, or None when it has none."""
    takes = await list_takes(db, node_id, limit=1)
    return takes[0] if takes else None


async def delete_take(db: Database, take_id: UUID) -> Take | None:
    """Delete a take and return it (None when it was gone already); call inside a change."""
    row = await db.fetch_one(
        f"DELETE FROM takes WHERE id = :id RETURNING {_COLUMNS}", {"id": take_id}
    )
    return None if row is None else to_struct(Take, row)


async def media_keys_of_node(db: Database, node_id: UUID) -> list[str]:
    """The media keys of every take of a node (to remove from storage when the node goes)."""
    rows = await db.fetch_all("SELECT media_key FROM takes WHERE node_id = :n", {"n": node_id})
    return [r["media_key"] for r in rows]


async def snapshot_takes(db: Database, project_id: UUID, per_node: int) -> list[Take]:
    """Each node's `per_node` newest takes, and its active take wherever that is older."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM ("
        f"  SELECT *, row_number() OVER (PARTITION BY node_id ORDER BY {_NEWEST_FIRST}) AS rank "
        "  FROM takes WHERE project_id = :p"
        ") t WHERE rank <= :per OR id IN "
        "(SELECT active_take_id FROM nodes WHERE project_id = :p AND active_take_id IS NOT NULL) "
        f"ORDER BY node_id, {_NEWEST_FIRST}",
        {"p": project_id, "per": per_node},
    )
    return to_structs(Take, rows)


async def get_project_take_by_key(db: Database, project_id: UUID, key: str) -> Take | None:
    """The take of `project_id` stored at `key`, or None."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM takes WHERE project_id = :p AND media_key = :k LIMIT 1",
        {"p": project_id, "k": key},
    )
    return None if row is None else to_struct(Take, row)
