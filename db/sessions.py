"""The sessions table: only sha256 hashes of tokens are stored."""

from __future__ import annotations

from uuid import UUID

from db.pool import Database
from db.rows import to_struct
from db.users import User


async def create_session(db: Database, user_id: UUID, token_hash: bytes, ttl_s: int) -> None:
    """Record a session that expires `ttl_s` seconds from now."""
    await db.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) "
        "VALUES (:h, :u, now() + make_interval(secs => :ttl))",
        {"h": token_hash, "u": user_id, "ttl": ttl_s},
    )


async def user_for_session(db: Database, token_hash: bytes) -> User | None:
    """The user of an unexpired session, or None."""
    row = await db.fetch_one(
        "SELECT u.id, u.email, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_hash = :h AND s.expires_at > now()",
        {"h": token_hash},
    )
    return None if row is None else to_struct(User, row)


async def live_sessions(db: Database, token_hashes: set[bytes]) -> set[bytes]:
    """Which of `token_hashes` are sessions that still exist and have not expired."""
    rows = await db.fetch_all(
        "SELECT token_hash FROM sessions "
        "WHERE token_hash = ANY(CAST(:h AS bytea[])) AND expires_at > now()",
        {"h": list(token_hashes)},
    )
    return {bytes(row["token_hash"]) for row in rows}


async def delete_session(db: Database, token_hash: bytes) -> None:
    """Revoke one session."""
    await db.execute("DELETE FROM sessions WHERE token_hash = :h", {"h": token_hash})


async def delete_expired_sessions(db: Database) -> int:
    """Remove expired sessions; returns how many."""
    rows = await db.fetch_all("DELETE FROM sessions WHERE expires_at <= now() RETURNING 1")
    return len(rows)
