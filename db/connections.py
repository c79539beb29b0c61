"""The connections table: directed edges between two nodes of one project."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from common.protocol.entities import Connection
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["Connection"]

_COLUMNS = "id, project_id, source_id, target_id, created_at, version"


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
    db: Database, project_id: UUID, source_id: UUID, target_id: UUID, *, version: int
) -> Connection:
    """Insert an edge inside a change, its seq as `version`; raises DuplicateConnection."""
    try:
        row = await db.fetch_one(
            "INSERT INTO connections (project_id, source_id, target_id, version) "
            f"VALUES (:p, :s, :t, :v) RETURNING {_COLUMNS}",
            {"p": project_id, "s": source_id, "t": target_id, "v": version},
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
