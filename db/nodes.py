"""The nodes table. Writes happen inside a change (db.changes) and record its seq as `version`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from common.protocol.entities import Node, NodeStatus, NodeType, Role
from db.members import Standing
from db.pool import Database
from db.rows import to_struct, to_structs

__all__ = ["Node", "NodeStatus", "NodeType"]


class NodeDataTooLarge(Exception):
    """A node's data would exceed its size limit; the change is rolled back."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"{size_bytes} > {limit_bytes} bytes")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


def _check_size(node: Node, limit_bytes: int | None) -> Node:
    """`node`, or NodeDataTooLarge when its data's JSON exceeds `limit_bytes`."""
    if limit_bytes is not None:
        size = len(msgspec.json.encode(node.data))
        if size > limit_bytes:
            raise NodeDataTooLarge(size, limit_bytes)
    return node


async def count_nodes(db: Database, project_id: UUID) -> int:
    """How many nodes the project has (exact under the project's lock, inside a change)."""
    count = await db.fetch_val(
        "SELECT count(*) FROM nodes WHERE project_id = :p", {"p": project_id}
    )
    return int(count)


_COLUMNS = (
    "id, project_id, type, x, y, data, status, error_message, created_at, updated_at, version, "
    "active_take_id"
)


async def list_nodes(db: Database, project_id: UUID) -> list[Node]:
    """Every node of a project, oldest first."""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM nodes WHERE project_id = :p ORDER BY created_at, id",
        {"p": project_id},
    )
    return to_structs(Node, rows)


async def get_node(db: Database, node_id: UUID) -> Node | None:
    """One node by id."""
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM nodes WHERE id = :id", {"id": node_id})
    return None if row is None else to_struct(Node, row)


async def get_node_and_standing(
    db: Database, node_id: UUID, user_id: UUID
) -> tuple[Node, Standing | None] | None:
    """The node and the user's membership of its project (None for a stranger), in one query."""
    row = await db.fetch_one(
        f"SELECT {', '.join('n.' + c.strip() for c in _COLUMNS.split(','))}, "
        "m.role AS m_role, m.added_seq AS m_added_seq FROM nodes n "
        "LEFT JOIN project_members m ON m.project_id = n.project_id AND m.user_id = :u "
        "WHERE n.id = :id",
        {"id": node_id, "u": user_id},
    )
    if row is None:
        return None
    mapping = dict(row._mapping)
    role, added_seq = mapping.pop("m_role"), mapping.pop("m_added_seq")
    node = msgspec.convert(mapping, Node)
    return node, None if role is None else Standing(Role(role), int(added_seq))


async def insert_node(
    db: Database,
    project_id: UUID,
    type: NodeType,
    x: float,
    y: float,
    data: dict[str, Any],
    *,
    version: int,
    max_data_bytes: int | None = None,
) -> Node:
    """Insert a node; call inside a change, with its seq as `version`."""
    row = await db.fetch_one(
        "INSERT INTO nodes (project_id, type, x, y, data, version) "
        f"VALUES (:p, :t, :x, :y, CAST(:d AS jsonb), :v) RETURNING {_COLUMNS}",
        {"p": project_id, "t": type.value, "x": x, "y": y, "d": data, "v": version},
    )
    return _check_size(to_struct(Node, row), max_data_bytes)


async def update_node(
    db: Database,
    node_id: UUID,
    *,
    version: int,
    x: float | None = None,
    y: float | None = None,
    data_patch: dict[str, Any] | None = None,
    status: NodeStatus | None = None,
    error_message: str | None = None,
    clear_error: bool = False,
    max_data_bytes: int | None = None,
    set_active_take: bool = False,
    active_take_id: UUID | None = None,
    data_remove: tuple[str, ...] = (),
) -> Node | None:
    """Move a node, merge keys into (or drop `data_remove` from) its data, set its status.

    With `set_active_take` the node's active take becomes `active_take_id`
    (None: no take). With `max_data_bytes` a merge that leaves the data larger
    raises NodeDataTooLarge. Call inside a change.
    """
    row = await db.fetch_one(
        "UPDATE nodes SET "
        "x = COALESCE(:x, x), y = COALESCE(:y, y), "
        "data = (data - CAST(:drop AS text[])) || COALESCE(CAST(:d AS jsonb), '{}'::jsonb), "
        "active_take_id = CASE WHEN :set_take THEN CAST(:take AS uuid) ELSE active_take_id END, "
        "status = COALESCE(CAST(:s AS node_status), status), "
        "error_message = CASE WHEN :clear THEN NULL ELSE COALESCE(:e, error_message) END, "
        f"version = :v, updated_at = now() WHERE id = :id RETURNING {_COLUMNS}",
        {
            "id": node_id,
            "v": version,
            "x": x,
            "y": y,
            "d": data_patch,
            "s": None if status is None else status.value,
            "e": error_message,
            "clear": clear_error,
            "drop": list(data_remove),
            "set_take": set_active_take,
            "take": active_take_id,
        },
    )
    return None if row is None else _check_size(to_struct(Node, row), max_data_bytes)


async def delete_node(db: Database, node_id: UUID) -> list[UUID]:
    """Delete a node and return the ids of the connections that went with it."""
    rows = await db.fetch_all(
        "SELECT id FROM connections WHERE source_id = :id OR target_id = :id ORDER BY id",
        {"id": node_id},
    )
    await db.execute("DELETE FROM nodes WHERE id = :id", {"id": node_id})
    return [r["id"] for r in rows]
