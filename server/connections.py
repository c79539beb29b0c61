"""Connections: list, create, delete."""

from __future__ import annotations

from collections import Counter
from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import ConnectionCreated, ConnectionDeleted
from common.protocol.ports import LinkError, LinkRefusal, check_link, default_port
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
    """Body of POST /api/projects/{project_id}/connections.

    Without `target_port` the link goes into the target's first port that
    fits the source and has room (a prompt into `prompt`, an image into
    `first_frame`, then `last_frame`, then `references`).
    """

    source_id: UUID
    target_id: UUID
    target_port: Annotated[str, msgspec.Meta(max_length=64)] | None = None


def invalid(error: LinkError) -> ApiError:
    """The 422 of a refused link: code `invalid_connection`, the rule broken as `reason`."""
    return ApiError(422, "invalid_connection", error.message, reason=error.reason.value)


@api("Connections of a project", response=list[Connection])
async def list_connections(request: Request) -> Response:
    """GET /api/projects/{project_id}/connections."""
    user = await require_user(request)
    store = app_state(request).store
    project = await owned_project(store, user, path_uuid(request, "project_id"))
    return json_response(await q.list_connections(store.db, project.id))


@api(
    "Connect a node's output to an input port of another",
    body=ConnectionCreate,
    response=Connection,
    status=201,
    errors=[403, 409],
)
async def create_connection(request: Request) -> Response:
    """POST /api/projects/{project_id}/connections: wire source into a port of target."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    body = await decode_body(request, ConnectionCreate)
    store = app_state(request).store
    await owned_project(store, user, project_id)
    if body.source_id == body.target_id:
        refused = LinkError(reason=LinkRefusal.SELF_LINK, message="A node cannot feed itself.")
        raise invalid(refused)

    async def apply(seq: int) -> ConnectionCreated:
        # every rule is checked under the project's lock: two links racing into one
        # port, or closing one cycle from both ends, cannot both pass
        ends = []
        for end, node_id in (("source", body.source_id), ("target", body.target_id)):
            node = await get_node(store.db, node_id)
            if node is None or node.project_id != project_id:
                raise ApiError(422, f"invalid_{end}", f"{end}_id must name a node of this project.")
            ends.append(node)
        source, target = ends
        inputs = await q.inputs_of(store.db, target.id)
        if any(source_id == source.id for _, source_id in inputs):
            raise q.DuplicateConnection()
        links = dict(Counter(port for port, _ in inputs))
        port = body.target_port
        if port is None:
            chosen = default_port(source.type, target.type, links)
            if isinstance(chosen, LinkError):
                raise invalid(chosen)
            port = chosen
        refused = check_link(source.type, target.type, port, links.get(port, 0))
        if refused is not None:
            raise invalid(refused)
        if await q.reaches(store.db, target.id, source.id):
            raise invalid(
                LinkError(
                    reason=LinkRefusal.CYCLE,
                    message="The target already feeds the source: this link would close a loop.",
                )
            )
        connection = await q.insert_connection(
            store.db, project_id, source.id, target.id, port, version=seq
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
