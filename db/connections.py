"""The connections table: directed edges between two nodes of one project."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from common.protocol.entities import Connection
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["Connection"]

_COLUMNS = "id, project_id, source_id, target_id, created_at, version, target_port"


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
    db: Database,
    project_id: UUID,
    source_id: UUID,
    target_id: UUID,
    target_port: str,
    *,
    version: int,
) -> Connection:
    """Insert an edge inside a change, its seq as `version`; raises DuplicateConnection."""
    try:
        row = await db.fetch_one(
            "INSERT INTO connections (project_id, source_id, target_id, target_port, version) "
            f"VALUES (:p, :s, :t, :port, :v) RETURNING {_COLUMNS}",
            {"p": project_id, "s": source_id, "t": target_id, "port": target_port, "v": version},
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


async def inputs_of(db: Database, target_id: UUID) -> list[tuple[str, UUID]]:
    """(port, source id) of every link into `target_id`, oldest first."""
    rows = await db.fetch_all(
        "SELECT target_port, source_id FROM connections WHERE target_id = :t "
        "ORDER BY created_at, id",
        {"t": target_id},
    )
    return [(r["target_port"], r["source_id"]) for r in rows]


async def reaches(db: Database, start_id: UUID, goal_id: UUID) -> bool:
    """Whether following links from `start_id` downstream arrives at `goal_id`."""
    found = await db.fetch_val(
        "WITH RECURSIVE down(id) AS ("
        "  SELECT target_id FROM connections WHERE source_id = :s"
        "  UNION SELECT c.target_id FROM connections c JOIN down d ON c.source_id = d.id"
        ") SELECT EXISTS (SELECT 1 FROM down WHERE id = :g)",
        {"s": start_id, "g": goal_id},
    )
    return bool(found)
