"""Nodes: list, create, read, move/edit, delete.

A write may name the version it was made against (`if_version`, the node's
`version` as the client last saw it); checked under the project's lock, a
stale one is refused with 409 `conflict` carrying the node as it is now, and
nothing is written. That is how two people typing into one prompt never lose
text silently: the second writer is shown both texts (docs/protocol.md,
"Concurrent edits").
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import NodeCreated, NodeDeleted, NodeUpdated
from db import nodes as q
from db.changes import publish_change
from db.media import NodeMedia, node_media
from db.nodes import Node, NodeType
from server.access import Action, authorize, node_for, project_for
from server.auth import require_user
from server.bodies import decode_body, has_visible_text, path_uuid
from server.errors import ApiError, not_found
from server.inputs import MAX_PROMPT_CHARS
from server.openapi import api
from server.purge import purge_node_media
from server.responses import json_response
from server.state import app_state
from server.uploads import project_image

log = logging.getLogger(__name__)

Coordinate = Annotated[float, msgspec.Meta(ge=-1e7, le=1e7)]
#: data keys only the server writes: they name stored media
RESERVED_DATA_KEYS = frozenset({"video_key", "video_url", "image_key", "image_url"})


class NodeCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/nodes."""

    type: NodeType
    x: Coordinate = 0.0
    y: Coordinate = 0.0
    data: dict[str, Any] = {}


Version = Annotated[int, msgspec.Meta(ge=0)]


class NodeUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of PATCH /api/nodes/{node_id}: every member optional; data keys are merged.

    `if_version`: apply only if the node's version is still this one (409 `conflict` if not).
    """

    x: Coordinate | None = None
    y: Coordinate | None = None
    data: dict[str, Any] | None = None
    if_version: Version | None = None


def conflict(current: Node, **extra: Any) -> ApiError:
    """The 409 of a write made against an older version: the entity as it is now goes with it."""
    return ApiError(
        409,
        "conflict",
        f"The node changed since the version you sent (it is at version {current.version}); "
        "apply your change to `current` and send it again with its version.",
        current=current,
        **extra,
    )


def if_version_param(request: Request) -> int | None:
    """The `if_version` query parameter (of a DELETE), or None; 422 when it is not a version."""
    raw = request.query_params.get("if_version")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, "invalid_body", "if_version must be a non-negative integer.")
    return int(raw)


def check_node_data(data: dict[str, Any], allowed: frozenset[str] = frozenset()) -> None:
    """Refuse data that would forge media keys (other than `allowed`) or an over-long prompt."""
    reserved = sorted((RESERVED_DATA_KEYS - allowed) & data.keys())
    if reserved:
        raise ApiError(
            422,
            "reserved_data_key",
            f"data may not set {', '.join(reserved)}: media is attached by upload or generation.",
        )
    prompt = data.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise ApiError(
            422,
            "invalid_prompt",
            f"data.prompt must be a string of at most {MAX_PROMPT_CHARS} characters.",
        )
    # "" and plain white space are a prompt being typed; invisible characters are not text
    if isinstance(prompt, str) and prompt.strip() and not has_visible_text(prompt):
        raise ApiError(422, "invalid_prompt", "data.prompt must contain a visible character.")


@api("Nodes of a project", response=list[Node])
async def list_nodes(request: Request) -> Response:
    """GET /api/projects/{project_id}/nodes."""
    user = await require_user(request)
    state = app_state(request)
    project, _ = await project_for(state.store, user, path_uuid(request, "project_id"), Action.READ)
    nodes = await q.list_nodes(state.store.db, project.id)
    return json_response([await state.presenter.node(n) for n in nodes])


@api("Add a node", body=NodeCreate, response=Node, status=201, errors=[403])
async def create_node(request: Request) -> Response:
    """POST /api/projects/{project_id}/nodes."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    state = app_state(request)
    store = state.store
    await project_for(store, user, project_id, Action.EDIT)
    body = await decode_body(request, NodeCreate)
    check_node_data(body.data)

    limits = state.settings

    async def apply(seq: int) -> NodeCreated:
        # again under the project's lock: a removal that committed meanwhile wins
        await authorize(store, user.id, project_id, Action.EDIT)
        # counted under the project's lock (taken by the seq bump): concurrent adds cannot overshoot
        if await q.count_nodes(store.db, project_id) >= limits.max_nodes_per_project:
            raise ApiError(
                422,
                "too_many_nodes",
                f"A project holds at most {limits.max_nodes_per_project} nodes; delete some first.",
            )
        node = await q.insert_node(
            store.db,
            project_id,
            body.type,
            body.x,
            body.y,
            body.data,
            version=seq,
            max_data_bytes=limits.max_node_data_bytes,
        )
        return NodeCreated(node=node)

    change = await publish_change(store, project_id, apply)
    return json_response(await state.presenter.node(change.data.node), 201)


@api("One node", response=Node)
async def get_node(request: Request) -> Response:
    """GET /api/nodes/{node_id}."""
    user = await require_user(request)
    state = app_state(request)
    node = await node_for(state.store, user, path_uuid(request, "node_id"), Action.READ)
    return json_response(await state.presenter.node(node))


@api(
    "Move a node or merge keys into its data",
    body=NodeUpdate,
    response=Node,
    errors=[403, 409],
)
async def update_node(request: Request) -> Response:
    """PATCH /api/nodes/{node_id}: move and/or merge data keys, if still at `if_version`."""
    user = await require_user(request)
    node_id = path_uuid(request, "node_id")
    state = app_state(request)
    store = state.store
    node = await node_for(store, user, node_id, Action.EDIT)
    body = await decode_body(request, NodeUpdate)
    if body.data is not None:
        check_node_data(body.data, allowed=frozenset({"image_key"}))
    if body.data is not None and "image_key" in body.data:
        # an image node may point at an image its project uploaded, and at nothing else
        if node.type != NodeType.IMAGE:
            raise ApiError(422, "invalid_image_key", "Only image nodes hold an image_key.")
        upload = await project_image(
            store, state.settings, node.project_id, body.data["image_key"], "image_key"
        )
        body.data["image_key"] = upload.key

    async def apply(seq: int) -> NodeUpdated:
        await authorize(store, user.id, node.project_id, Action.EDIT, "node")
        if body.if_version is not None:
            # every write of a node holds the project's lock (taken by publish_change):
            # what we read here is what the update below would overwrite
            current = await q.get_node(store.db, node_id)
            if current is None:
                raise not_found("node")
            if current.version != body.if_version:
                raise conflict(await state.presenter.node(current), patch=body)
        updated = await q.update_node(
            store.db,
            node_id,
            version=seq,
            x=body.x,
            y=body.y,
            data_patch=body.data,
            max_data_bytes=state.settings.max_node_data_bytes,
        )
        if updated is None:
            raise not_found("node")
        return NodeUpdated(node=updated)

    change = await publish_change(store, node.project_id, apply)
    return json_response(await state.presenter.node(change.data.node))


@api(
    "Delete a node with its connections, jobs and takes",
    status=204,
    errors=[403, 409],
    query=[("if_version", "integer", False)],
)
async def delete_node(request: Request) -> Response:
    """DELETE /api/nodes/{node_id}[?if_version=N]: the node, its connections, jobs and takes."""
    user = await require_user(request)
    node_id = path_uuid(request, "node_id")
    state = app_state(request)
    store = state.store
    node = await node_for(store, user, node_id, Action.EDIT)
    if_version = if_version_param(request)

    owned: list[NodeMedia | None] = []

    async def apply(seq: int) -> NodeDeleted:
        await authorize(store, user.id, node.project_id, Action.EDIT, "node")
        if if_version is not None:
            current = await q.get_node(store.db, node_id)
            if current is None:
                raise not_found("node")
            if current.version != if_version:
                raise conflict(await state.presenter.node(current))
        owned.append(await node_media(store.db, node_id))
        connection_ids = await q.delete_node(store.db, node_id)
        return NodeDeleted(node_id=node_id, connection_ids=connection_ids)

    await publish_change(store, node.project_id, apply)
    await purge_node_media(store, state.storage, owned[-1])
    return Response(status_code=204)
