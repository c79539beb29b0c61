"""Connections: list, create, delete."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import ConnectionCreated, ConnectionDeleted
from common.protocol.ports import LinkError
from db import connections as q
from db.changes import publish_change
from db.connections import Connection
from db.wiring import InvalidLink, WrongEnd, insert_checked
from server.access import Action, authorize, connection_for, project_for
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
    project, _ = await project_for(store, user, path_uuid(request, "project_id"), Action.READ)
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
    store = app_state(request).store
    await project_for(store, user, project_id, Action.EDIT)
    body = await decode_body(request, ConnectionCreate)

    async def apply(seq: int) -> ConnectionCreated:
        # again under the project's lock: a removal that committed meanwhile wins
        await authorize(store, user.id, project_id, Action.EDIT)
        connection = await insert_checked(
            store.db, project_id, body.source_id, body.target_id, body.target_port, version=seq
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
    except InvalidLink as exc:
        raise invalid(exc.error) from None
    except WrongEnd as exc:
        raise ApiError(
            422, f"invalid_{exc.end}", f"{exc.end}_id must name a node of this project."
        ) from None
    return json_response(change.data.connection, 201)


@api("Delete a connection", status=204, errors=[403])
async def delete_connection(request: Request) -> Response:
    """DELETE /api/connections/{connection_id}."""
    user = await require_user(request)
    store = app_state(request).store
    connection = await connection_for(store, user, path_uuid(request, "connection_id"), Action.EDIT)

    async def apply(seq: int) -> ConnectionDeleted:
        await authorize(store, user.id, connection.project_id, Action.EDIT, "connection")
        await q.delete_connection(store.db, connection.id)
        return ConnectionDeleted(connection_id=connection.id)

    await publish_change(store, connection.project_id, apply)
    return Response(status_code=204)
