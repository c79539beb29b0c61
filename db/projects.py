"""The projects table. Creation is not a change (nobody can be subscribed yet); rename and
delete go through db.changes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from db.pool import Database
from db.rows import to_struct, to_structs

_COLUMNS = "id, owner_id, name, seq, created_at, updated_at"


class Project(msgspec.Struct, frozen=True):
    """A canvas: nodes and connections owned by one user."""

    id: UUID
    owner_id: UUID
    name: str
    seq: int
    created_at: datetime
    updated_at: datetime


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
