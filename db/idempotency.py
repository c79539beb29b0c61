"""The idempotency_keys table: a user's Idempotency-Key and the job its first request made.

The key is claimed inside the change that creates the job (db/lifecycle.py
`submit_job`), by an INSERT on the primary key (user_id, key): of any number
of concurrent requests with one key, Postgres lets exactly one claim it; the
others wait for that transaction and then find the key taken (KeyTaken), and
read the job it made. A key older than KEY_TTL_H may be claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from db.pool import Database

#: how long a key keeps answering with its job
KEY_TTL_H = 24


class KeyTaken(Exception):
    """Another request holds this key (committed): answer with what it made."""


@dataclass(frozen=True)
class Claim:
    """A request's Idempotency-Key, and the hash of what it asked for."""

    user_id: UUID
    key: str
    request_hash: str


@dataclass(frozen=True)
class Held:
    """A key already used: the hash of its request and the job it made."""

    request_hash: str
    job_id: UUID | None


async def find_key(db: Database, user_id: UUID, key: str) -> Held | None:
    """The live (younger than KEY_TTL_H) use of `key` by `user_id`, or None."""
    row = await db.fetch_one(
        "SELECT request_hash, job_id FROM idempotency_keys WHERE user_id = :u AND key = :k "
        "AND created_at > now() - make_interval(hours => :ttl)",
        {"u": user_id, "k": key, "ttl": KEY_TTL_H},
    )
    return None if row is None else Held(request_hash=row["request_hash"], job_id=row["job_id"])


async def claim_key(db: Database, claim: Claim) -> None:
    """Claim the key for this request (inside its change); KeyTaken when a live use holds it."""
    row = await db.fetch_one(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (:u, :k, :h) "
        # an expired use gives the key up
        "ON CONFLICT (user_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
        "job_id = NULL, created_at = now() "
        "WHERE idempotency_keys.created_at <= now() - make_interval(hours => :ttl) "
        "RETURNING key",
        {"u": claim.user_id, "k": claim.key, "h": claim.request_hash, "ttl": KEY_TTL_H},
    )
    if row is None:
        raise KeyTaken(claim.key)


async def bind_key(db: Database, claim: Claim, job_id: UUID) -> None:
    """Record the job the claimed key made (same change)."""
    await db.execute(
        "UPDATE idempotency_keys SET job_id = :j WHERE user_id = :u AND key = :k",
        {"j": job_id, "u": claim.user_id, "k": claim.key},
    )
