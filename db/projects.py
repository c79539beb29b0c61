"""The projects table. Creation is not a change (nobody can be subscribed yet); rename and
delete go through db.changes."""

from __future__ import annotations

from uuid import UUID

from common.protocol.entities import Project
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["Project"]

_COLUMNS = "id, owner_id, name, seq, created_at, updated_at"


async def create_project(db: Database, owner_id: UUID, name: str) -> Project:
    """Insert a project at seq 0."""
    row = await db.fetch_one(
        f"INSERT INTO projects (owner_id, name) VALUES (:o, :n) RETURNING {_COLUMNS}",
        {"o": owner_id, "n": name},
    )
    return to_struct(Project, row)


async def list_projects(db: Database, owner_id: UUID) -> list[Project]:
    """The owner's projects, oldest first."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM projects WHERE owner_id = :o ORDER BY created_at, id",
        {"o": owner_id},
    )
    return to_structs(Project, rows)


async def get_project(db: Database, project_id: UUID) -> Project | None:
    """One project by id, whoever owns it."""
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM projects WHERE id = :id", {"id": project_id})
    return None if row is None else to_struct(Project, row)


async def get_owned_project(db: Database, project_id: UUID, owner_id: UUID) -> Project | None:
    """The project if `owner_id` owns it, else None (the caller answers 404 either way)."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM projects WHERE id = :id AND owner_id = :o",
        {"id": project_id, "o": owner_id},
    )
    return None if row is None else to_struct(Project, row)


async def rename_project(db: Database, project_id: UUID, name: str) -> Project:
    """Set the name; call inside a change."""
    row = await db.fetch_one(
        f"UPDATE projects SET name = :n WHERE id = :id RETURNING {_COLUMNS}",
        {"id": project_id, "n": name},
    )
    return to_struct(Project, row)


async def delete_project(db: Database, project_id: UUID) -> None:
    """Delete the project and, by cascade, everything in it; call inside a change."""
    await db.execute("DELETE FROM projects WHERE id = :id", {"id": project_id})


async def current_seq(db: Database, project_id: UUID) -> int | None:
    """The project's seq now, or None when it does not exist."""
    seq = await db.fetch_val("SELECT seq FROM projects WHERE id = :id", {"id": project_id})
    return None if seq is None else int(seq)


async def seqs_of(db: Database, project_ids: list[UUID]) -> dict[UUID, int]:
    """The seq of each of these projects that still exists (one query for all)."""
    rows = await db.fetch_all(
        "SELECT id, seq FROM projects WHERE id = ANY(CAST(:ids AS uuid[]))", {"ids": project_ids}
    )
    return {row["id"]: int(row["seq"]) for row in rows}


async def latest_media(db: Database, owner_id: UUID) -> dict[UUID, tuple[str, str]]:
    """Per project of the owner, its newest output: (key, "video"), else (key, "image")."""
    rows = await db.fetch_all(
        "SELECT DISTINCT ON (n.project_id) n.project_id, "
        "COALESCE(n.data->>'video_key', n.data->>'image_key') AS key, "
        "CASE WHEN n.data ? 'video_key' THEN 'video' ELSE 'image' END AS kind "
        "FROM nodes n JOIN projects p ON p.id = n.project_id "
        "WHERE p.owner_id = :o AND (n.data ? 'video_key' OR n.data ? 'image_key') "
        "ORDER BY n.project_id, (n.data ? 'video_key') DESC, n.updated_at DESC",
        {"o": owner_id},
    )
    return {r["project_id"]: (r["key"], r["kind"]) for r in rows}
