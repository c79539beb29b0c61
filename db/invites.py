"""The project_invites table: single-use invitation links, stored as a hash of their token."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec

from common.protocol.entities import Role
from db.connect import Database
from db.rows import to_struct, to_structs

_COLUMNS = (
    "id, project_id, role, created_by, created_at, expires_at, accepted_by, accepted_at, "
    "revoked_at, CASE WHEN accepted_at IS NOT NULL THEN 'accepted' "
    "WHEN revoked_at IS NOT NULL THEN 'revoked' "
    "WHEN expires_at <= now() THEN 'expired' ELSE 'pending' END AS status"
)


class InviteStatus(enum.StrEnum):
    """Where an invitation is: only a pending one can be accepted."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Invite(msgspec.Struct, frozen=True):
    """An invitation link's record (never its token)."""

    id: UUID
    project_id: UUID
    role: Role
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_by: UUID | None
    accepted_at: datetime | None
    revoked_at: datetime | None
    status: InviteStatus


async def create_invite(
    db: Database,
    project_id: UUID,
    token_hash: bytes,
    role: Role,
    created_by: UUID,
    expires_in_s: int,
) -> Invite:
    """Store a new invitation (its token's hash only)."""
    row = await db.fetch_one(
        "INSERT INTO project_invites (project_id, token_hash, role, created_by, expires_at) "
        "VALUES (:p, :h, CAST(:r AS member_role), :by, now() + make_interval(secs => :s)) "
        f"RETURNING {_COLUMNS}",
        {"p": project_id, "h": token_hash, "r": role.value, "by": created_by, "s": expires_in_s},
    )
    return to_struct(Invite, row)


async def list_invites(db: Database, project_id: UUID, limit: int = 100) -> list[Invite]:
    """The project's invitations, newest first."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM project_invites WHERE project_id = :p "
        "ORDER BY created_at DESC, id LIMIT :lim",
        {"p": project_id, "lim": limit},
    )
    return to_structs(Invite, rows)


async def find_invite(db: Database, token_hash: bytes) -> Invite | None:
    """The invitation a token names, in whatever state, or None."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM project_invites WHERE token_hash = :h", {"h": token_hash}
    )
    return None if row is None else to_struct(Invite, row)


async def claim_invite(db: Database, invite_id: UUID, user_id: UUID) -> Invite | None:
    """Mark a pending invitation used by `user_id` (inside the change that adds the member).

    A guarded UPDATE: None when it was used, revoked or expired meanwhile, so
    one token admits one person however many accept it at once.
    """
    row = await db.fetch_one(
        "UPDATE project_invites SET accepted_by = :u, accepted_at = now() "
        "WHERE id = :id AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now() "
        f"RETURNING {_COLUMNS}",
        {"id": invite_id, "u": user_id},
    )
    return None if row is None else to_struct(Invite, row)


async def revoke_invite(db: Database, project_id: UUID, invite_id: UUID) -> Invite | None:
    """Revoke an invitation of the project (a used or revoked one stays as it is); None if none."""
    row = await db.fetch_one(
        "UPDATE project_invites SET revoked_at = CASE WHEN accepted_at IS NULL "
        "THEN COALESCE(revoked_at, now()) END "
        f"WHERE id = :id AND project_id = :p RETURNING {_COLUMNS}",
        {"id": invite_id, "p": project_id},
    )
    return None if row is None else to_struct(Invite, row)
