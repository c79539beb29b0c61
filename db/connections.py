"""The connections table: directed edges between two nodes of one project."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from db.pool import Database
from db.rows import to_struct, to_structs

_COLUMNS = "id, project_id, source_id, target_id, created_at"


class Connection(msgspec.Struct, frozen=True):
    """An edge from `source_id` to `target_id`."""

    id: UUID
    project_id: UUID
    source_id: UUID
    target_id: UUID
    created_at: datetime


class DuplicateConnection(Exception):
    """The same source and target are already connected."""


class MissingEndpoint(Exception):
    """An end of the connection is gone or lives in another project."""


async def list_connections(db: Database, project_id: UUID) -> list[Connection]:
    """Every connection of a project, oldest first."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM connections WHERE project_id = :p ORDER BY created_at, id",
        {"p": project_id},
    )
    return to_structs(Connection, rows)


async def get_connection(db: Database, connection_id: UUID) -> Connection | None:
    """One connection by id."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM connections WHERE id = :id", {"id": connection_id}
    )
    return None if row is None else to_struct(Connection, row)


async def insert_connection(
    db: Database, project_id: UUID, source_id: UUID, target_id: UUID
) -> Connection:
    """Insert an edge; call inside a change. Raises DuplicateConnection."""
    try:
        row = await db.fetch_one(
            "INSERT INTO connections (project_id, source_id, target_id) "
            f"VALUES (:p, :s, :t) RETURNING {_COLUMNS}",
            {"p": project_id, "s": source_id, "t": target_id},
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateConnection() from None
    except asyncpg.ForeignKeyViolationError:
        # a node deleted between the route's check and this insert
        raise MissingEndpoint() from None
    return to_struct(Connection, row)


async def delete_connection(db: Database, connection_id: UUID) -> None:
    """Delete an edge; call inside a change."""
    await db.execute("DELETE FROM connections WHERE id = :id", {"id": connection_id})


async def sources_of(db: Database, target_id: UUID) -> list[UUID]:
    """Ids of the nodes wired into `target_id`."""
    rows = await db.fetch_all(
        "SELECT source_id FROM connections WHERE target_id = :t ORDER BY created_at",
        {"t": target_id},
    )
    return [r["source_id"] for r in rows]
