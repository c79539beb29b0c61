"""Look-ups that answer 404 unless the caller owns the thing (never revealing it exists)."""

from __future__ import annotations

from uuid import UUID

from db.changes import Store
from db.connections import Connection, get_connection
from db.nodes import Node, get_node_for_owner
from db.projects import Project, get_owned_project
from db.users import User
from server.errors import not_found


async def owned_project(store: Store, user: User, project_id: UUID) -> Project:
    """The caller's project, or 404 `project_not_found`."""
    project = await get_owned_project(store.db, project_id, user.id)
    if project is None:
        raise not_found("project")
    return project


async def owned_node(store: Store, user: User, node_id: UUID) -> Node:
    """A node in one of the caller's projects, or 404 `node_not_found`."""
    node = await get_node_for_owner(store.db, node_id, user.id)
    if node is None:
        raise not_found("node")
    return node


async def owned_connection(store: Store, user: User, connection_id: UUID) -> Connection:
    """A connection in one of the caller's projects, or 404 `connection_not_found`."""
    connection = await get_connection(store.db, connection_id)
    if (
        connection is None
        or await get_owned_project(store.db, connection.project_id, user.id) is None
    ):
        raise not_found("connection")
    return connection
