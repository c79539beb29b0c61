"""Open the Postgres pool: jsonb decoded to Python objects, no session reset on release."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from db.pool import Database, DatabaseUnavailable, PoolStats, Row, positional

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "PoolStats",
    "Row",
    "asyncpg_dsn",
    "make_database",
    "positional",
]


def asyncpg_dsn(url: str) -> str:
    """`url` as asyncpg takes it (a SQLAlchemy-style `postgresql+asyncpg://` loses its driver)."""
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb otherwise comes back as a JSON string (see FACTS.md)
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, a round trip per query made outside a
    transaction (about a fifth of the web process's CPU under submit load).
    canvasflow leaves no session state behind: no session advisory locks (the
    migration lock is transaction-scoped), cursors, LISTEN or SET. What a
    cancelled query leaves is handled before this runs: asyncpg's release
    waits for the query's cancellation to finish and rolls back an open
    transaction, or terminates the connection if either fails (db/pool.py).
    """


def make_database(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout_s: float = 5.0,
    close_timeout_s: float = 10.0,
) -> Database:
    """A `Database` (not yet connected) whose jsonb columns are Python objects.

    `acquire_timeout_s` also bounds giving a connection back (waiting for a
    cancelled query to stop and rolling back), past which it is closed.
    """
    return Database(
        asyncpg_dsn(url),
        min_size=min_size,
        max_size=max_size,
        acquire_timeout_s=acquire_timeout_s,
        release_timeout_s=acquire_timeout_s,
        close_timeout_s=close_timeout_s,
        init=_init_connection,
        reset=_keep_session,
    )
