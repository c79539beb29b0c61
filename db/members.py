"""The project_members table: who may open a project, and with which role.

Every project has exactly one owner member (a trigger adds it with the
project; a partial unique index keeps it one). Writes happen inside a change
(db.changes) so each is a seq'd event; reads here are what every access
decision (server/access.py) is made from, so a change is in force the moment
it commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from common.protocol.entities import Member, Role
from db.connect import Database
from db.rows import to_struct, to_structs

__all__ = ["Member", "Role"]

_COLUMNS = "m.user_id, u.email, m.role, m.added_at"
_FROM = "FROM project_members m JOIN users u ON u.id = m.user_id"


class AlreadyMember(Exception):
    """The user is a member of the project already."""


@dataclass(frozen=True)
class Standing:
    """A user's membership of one project, as access decisions need it."""

    role: Role
    #: the seq of the change that added them (0 for owners from before teams)
    added_seq: int


async def standing(db: Database, project_id: UUID, user_id: UUID) -> Standing | None:
    """The user's role in the project and when they joined, or None for a stranger."""
    row = await db.fetch_one(
        "SELECT role, added_seq FROM project_members WHERE project_id = :p AND user_id = :u",
        {"p": project_id, "u": user_id},
    )
    return None if row is None else Standing(Role(row["role"]), int(row["added_seq"]))


async def list_members(db: Database, project_id: UUID) -> list[Member]:
    """The project's members: the owner first, then by when they joined."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} {_FROM} WHERE m.project_id = :p "
        "ORDER BY m.role = 'owner' DESC, m.added_at, m.user_id",
        {"p": project_id},
    )
    return to_structs(Member, rows)


async def get_member(db: Database, project_id: UUID, user_id: UUID) -> Member | None:
    """One member, or None."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} {_FROM} WHERE m.project_id = :p AND m.user_id = :u",
        {"p": project_id, "u": user_id},
    )
    return None if row is None else to_struct(Member, row)


async def add_member(
    db: Database, project_id: UUID, user_id: UUID, role: Role, *, seq: int
) -> Member:
    """Add a member inside a change (its seq recorded); raises AlreadyMember."""
    try:
        await db.execute(
            "INSERT INTO project_members (project_id, user_id, role, added_seq) "
            "VALUES (:p, :u, CAST(:r AS member_role), :s)",
            {"p": project_id, "u": user_id, "r": role.value, "s": seq},
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyMember() from None
    member = await get_member(db, project_id, user_id)
    assert member is not None
    return member


async def set_role(db: Database, project_id: UUID, user_id: UUID, role: Role) -> Member | None:
    """Change a member's role inside a change; None when they are not a member."""
    row = await db.fetch_one(
        "UPDATE project_members SET role = CAST(:r AS member_role) "
        "WHERE project_id = :p AND user_id = :u RETURNING user_id",
        {"p": project_id, "u": user_id, "r": role.value},
    )
    return None if row is None else await get_member(db, project_id, user_id)


async def remove_member(db: Database, project_id: UUID, user_id: UUID) -> bool:
    """Remove a member inside a change; False when they were not one."""
    row = await db.fetch_one(
        "DELETE FROM project_members WHERE project_id = :p AND user_id = :u RETURNING 1",
        {"p": project_id, "u": user_id},
    )
    return row is not None
