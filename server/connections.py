"""Connections: list, create, delete."""

from __future__ import annotations

from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import ConnectionCreated, ConnectionDeleted
from db import connections as q
from db.changes import publish_change
from db.connections import Connection
from db.nodes import get_node
from server.access import owned_connection, owned_project
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.errors import ApiError
from server.openapi import api
from server.responses import json_response
from server.state import app_state


class ConnectionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/connections."""

    source_id: UUID
    target_id: UUID


@api("Connections of a project", response=list[Connection])
async def list_connections(request: Request) -> Response:
    """GET /api/projects/{project_id}/connections."""
    user = await require_user(request)
    store = app_state(request).store
    project = await owned_project(store, user, path_uuid(request, "project_id"))
    return json_response(await q.list_connections(store.db, project.id))


@api("Connect two nodes", body=ConnectionCreate, response=Connection, status=201, errors=[403, 409])
async def create_connection(request: Request) -> Response:
    """POST /api/projects/{project_id}/connections: wire source into target."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    body = await decode_body(request, ConnectionCreate)
    store = app_state(request).store
    await owned_project(store, user, project_id)
    if body.source_id == body.target_id:
        raise ApiError(422, "self_loop", "A node cannot be connected to itself.")
    for end, node_id in (("source", body.source_id), ("target", body.target_id)):
        node = await get_node(store.db, node_id)
        if node is None or node.project_id != project_id:
            raise ApiError(422, f"invalid_{end}", f"{end}_id must name a node of this project.")

    async def apply(seq: int) -> ConnectionCreated:
        connection = await q.insert_connection(
            store.db, project_id, body.source_id, body.target_id, version=seq
        )
        return ConnectionCreated(connection=connection)

    try:
        change = await publish_change(store, project_id, apply)
    except q.DuplicateConnection:
        raise ApiError(
            409, "duplicate_connection", "These two nodes are already connected."
        ) from None
    except q.MissingEndpoint:
        raise ApiError(
            422, "invalid_endpoint", "source_id and target_id must name nodes of this project."
        ) from None
    return json_response(change.data.connection, 201)


@api("Delete a connection", status=204, errors=[403])
async def delete_connection(request: Request) -> Response:
    """DELETE /api/connections/{connection_id}."""
    user = await require_user(request)
    store = app_state(request).store
    connection = await owned_connection(store, user, path_uuid(request, "connection_id"))

    async def apply(seq: int) -> ConnectionDeleted:
        await q.delete_connection(store.db, connection.id)
        return ConnectionDeleted(connection_id=connection.id)

    await publish_change(store, connection.project_id, apply)
    return Response(status_code=204)
