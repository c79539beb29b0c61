"""The projects table. Creation is not a change (nobody can be subscribed yet); rename,
transfer and delete go through db.changes. A trigger makes the creator the owner member
(db/members.py)."""

from __future__ import annotations

from uuid import UUID

import msgspec

from common.protocol.entities import MemberProject, Project, Role
from db.members import Standing
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["MemberProject", "Project"]

_COLUMNS = "id, owner_id, name, seq, created_at, updated_at"


async def create_project(db: Database, owner_id: UUID, name: str) -> Project:
    """Insert a project at seq 0."""
    row = await db.fetch_one(
        f"INSERT INTO projects (owner_id, name) VALUES (:o, :n) RETURNING {_COLUMNS}",
        {"o": owner_id, "n": name},
    )
    return to_struct(Project, row)


_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in _COLUMNS.split(","))


async def list_member_projects(db: Database, user_id: UUID) -> list[MemberProject]:
    """Every project the user is a member of (owned or shared), with their role, oldest first."""
    rows = await db.fetch_all(
        f"SELECT {_P_COLUMNS}, m.role FROM projects p "
        "JOIN project_members m ON m.project_id = p.id AND m.user_id = :u "
        "ORDER BY p.created_at, p.id",
        {"u": user_id},
    )
    return to_structs(MemberProject, rows)


async def get_project(db: Database, project_id: UUID) -> Project | None:
    """One project by id, whoever owns it."""
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM projects WHERE id = :id", {"id": project_id})
    return None if row is None else to_struct(Project, row)


async def get_project_and_standing(
    db: Database, project_id: UUID, user_id: UUID
) -> tuple[Project, Standing | None] | None:
    """The project and the user's membership of it (None for a stranger), in one query."""
    row = await db.fetch_one(
        f"SELECT {_P_COLUMNS}, m.role AS m_role, m.added_seq AS m_added_seq FROM projects p "
        "LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = :u WHERE p.id = :id",
        {"id": project_id, "u": user_id},
    )
    if row is None:
        return None
    mapping = dict(row._mapping)
    role, added_seq = mapping.pop("m_role"), mapping.pop("m_added_seq")
    project = msgspec.convert(mapping, Project)
    return project, None if role is None else Standing(Role(role), int(added_seq))


async def set_owner(db: Database, project_id: UUID, owner_id: UUID) -> Project:
    """Record the new owner on the project row; call inside the change that moves the roles."""
    row = await db.fetch_one(
        f"UPDATE projects SET owner_id = :o WHERE id = :id RETURNING {_COLUMNS}",
        {"id": project_id, "o": owner_id},
    )
    return to_struct(Project, row)


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


async def latest_media(db: Database, user_id: UUID) -> dict[UUID, tuple[str, str]]:
    """Per project the user is a member of, its newest output: (key, "video"), else
    (key, "image")."""
    rows = await db.fetch_all(
        "SELECT DISTINCT ON (n.project_id) n.project_id, "
        "COALESCE(n.data->>'video_key', n.data->>'image_key') AS key, "
        "CASE WHEN n.data ? 'video_key' THEN 'video' ELSE 'image' END AS kind "
        "FROM nodes n JOIN project_members m ON m.project_id = n.project_id "
        "WHERE m.user_id = :u AND (n.data ? 'video_key' OR n.data ? 'image_key') "
        "ORDER BY n.project_id, (n.data ? 'video_key') DESC, n.updated_at DESC",
        {"u": user_id},
    )
    return {r["project_id"]: (r["key"], r["kind"]) for r in rows}
