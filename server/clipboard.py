"""Paste: nodes with their data and the connections among them, in one request.

The canvas pastes copied nodes (into the project they came from or another of the
same user's) and brings deleted nodes back on undo through this route. Media keys in
the pasted data are re-attached only when the caller may read them: an image
uploaded to one of the caller's projects, a video stored under one of them. An image
from another project and every video are copied to a key of the target project, so
each project keeps owning its media. Each node and each connection is its own change
(`node.created`, `connection.created`), so every open tab sees them as usual.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import ConnectionCreated, NodeCreated
from db import connections as conn_q
from db import nodes as node_q
from db.changes import Store, publish_change
from db.connections import Connection
from db.nodes import Node, NodeStatus, NodeType
from db.uploads import QuotaExceeded, get_project_upload, insert_upload
from db.users import User
from db.wiring import InvalidLink, WrongEnd, insert_checked
from server.access import Action, Decision, authorize, check, project_for
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.errors import ApiError
from server.nodes import Coordinate, check_node_data
from server.openapi import api
from server.responses import json_response
from server.state import app_state
from tasks.storage.base import Storage, StorageError

Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
MAX_PASTED_NODES = 200
MAX_PASTED_CONNECTIONS = 1000
#: media a node type may carry, and the key prefix each lives under
_MEDIA = {NodeType.IMAGE: ("image_key", "images"), NodeType.VIDEO: ("video_key", "videos")}


class PasteNode(msgspec.Struct, forbid_unknown_fields=True):
    """A node to create; `ref` names it in `connections` and in the answer's `refs`."""

    ref: Ref
    type: NodeType
    x: Coordinate = 0.0
    y: Coordinate = 0.0
    data: dict[str, Any] = {}


class PasteConnection(msgspec.Struct, forbid_unknown_fields=True):
    """A connection; each end is a pasted node's `ref` or the id of a node of the project."""

    source: Ref
    target: Ref
    ref: Ref | None = None
    #: the target's input port; without one the first port that fits (common/protocol/ports.py)
    target_port: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class PasteBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/paste."""

    nodes: Annotated[list[PasteNode], msgspec.Meta(max_length=MAX_PASTED_NODES)]
    connections: Annotated[
        list[PasteConnection], msgspec.Meta(max_length=MAX_PASTED_CONNECTIONS)
    ] = []


class PasteResponse(msgspec.Struct):
    """What was made: nodes (media URLs signed), connections, and `refs` → new ids."""

    nodes: list[Node]
    connections: list[Connection]
    refs: dict[str, UUID]


async def _media_key(
    store: Store,
    storage: Storage,
    user: User,
    project_id: UUID,
    node: PasteNode,
    quota_bytes: int,
) -> str | None:
    """The key the node's media gets in `project_id`, copied if need be; 422 if unreadable."""
    field_prefix = _MEDIA.get(node.type)
    for other, (field, _) in _MEDIA.items():
        if other != node.type and field in node.data:
            raise ApiError(422, f"invalid_{field}", f"Only {other} nodes hold a {field}.")
    if field_prefix is None or field_prefix[0] not in node.data:
        return None
    field, prefix = field_prefix
    key = node.data[field]
    refused = ApiError(422, f"invalid_{field}", f"{field} must name media of one of your projects.")
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 3 or parts[0] != prefix:
        raise refused
    try:
        source_project = UUID(parts[1])
    except ValueError:
        raise refused from None
    # the source may be any project the caller can read (a copy made where they edit)
    decision, _ = await check(store, user.id, source_project, Action.READ)
    if decision is not Decision.ALLOWED:
        raise refused
    if prefix == "images":
        upload = await get_project_upload(store.db, source_project, key)
        if upload is None:
            raise refused
        if source_project == project_id:
            return str(key)  # an upload of this project: nodes may share it
        try:
            data = await storage.get_bytes(key)
        except StorageError:
            raise refused from None
        new_id = uuid.uuid4()
        new_key = f"images/{project_id}/{new_id}.{key.rsplit('.', 1)[-1]}"
        await storage.put_bytes(new_key, data, upload.mime_type)
        try:
            await insert_upload(
                store.db,
                new_id,
                project_id,
                new_key,
                upload.mime_type,
                upload.width,
                upload.height,
                upload.size_bytes,
                # a copy is stored again, so it counts against the caller's quota like an upload
                quota_bytes=quota_bytes,
            )
        except QuotaExceeded as exc:
            with contextlib.suppress(StorageError):
                await storage.delete(new_key)
            raise ApiError(
                413,
                "storage_quota_exceeded",
                f"Pasting would take your stored images past {exc.quota_bytes} bytes.",
            ) from None
        return new_key
    # a video: its own copy, so a node never shares a clip another may delete
    try:
        data = await storage.get_bytes(key)
    except StorageError:
        raise refused from None
    new_key = f"videos/{project_id}/{uuid.uuid4()}.mp4"
    await storage.put_bytes(new_key, data, "video/mp4")
    return new_key


@api(
    "Paste nodes with their data and the connections among them",
    body=PasteBody,
    response=PasteResponse,
    status=201,
    errors=[403],
)
async def paste_nodes(request: Request) -> Response:
    """POST /api/projects/{project_id}/paste: one `node.created` per node, then the connections."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    body = await decode_body(request, PasteBody)
    state = app_state(request)
    store, storage, limits = state.store, state.storage, state.settings
    await project_for(store, user, project_id, Action.EDIT)

    # 1. check everything before changing anything
    refs = [n.ref for n in body.nodes]
    if len(set(refs)) != len(refs):
        raise ApiError(422, "duplicate_ref", "Each pasted node needs its own ref.")
    pasted = set(refs)
    for node in body.nodes:
        check_node_data(node.data, allowed=frozenset({"image_key", "video_key"}))
    existing: set[str] = set()
    for link in body.connections:
        for end in (link.source, link.target):
            if end in pasted or end in existing:
                continue
            found = None
            with contextlib.suppress(ValueError):
                found = await node_q.get_node(store.db, UUID(end))
            if found is None or found.project_id != project_id:
                raise ApiError(
                    422,
                    "invalid_connection",
                    f"{end!r} is neither a pasted node's ref nor a node of this project.",
                )
            existing.add(end)
        if link.source == link.target:
            raise ApiError(422, "self_loop", "A node cannot be connected to itself.")

    # 2. media the caller may read, re-attached (copied where it belongs elsewhere)
    datas = []
    for node in body.nodes:
        data = dict(node.data)
        key = await _media_key(store, storage, user, project_id, node, limits.storage_quota_bytes)
        if key is not None:
            data[_MEDIA[node.type][0]] = key
        datas.append(data)

    # 3. one change per node, then one per connection
    presenter = state.presenter
    ids: dict[str, UUID] = {}
    made_nodes = []
    for node, data in zip(body.nodes, datas, strict=True):
        kind, x, y, has_video = node.type, node.x, node.y, "video_key" in data

        async def apply_node(
            seq: int,
            kind: NodeType = kind,
            x: float = x,
            y: float = y,
            data: dict[str, Any] = data,
            has_video: bool = has_video,
        ) -> NodeCreated:
            # again under the project's lock: a removal that committed meanwhile wins
            await authorize(store, user.id, project_id, Action.EDIT)
            # the same limits as one node at a time, counted under the project's lock
            if await node_q.count_nodes(store.db, project_id) >= limits.max_nodes_per_project:
                raise ApiError(
                    422,
                    "too_many_nodes",
                    f"A project holds at most {limits.max_nodes_per_project} nodes.",
                )
            made = await node_q.insert_node(
                store.db,
                project_id,
                kind,
                x,
                y,
                data,
                version=seq,
                max_data_bytes=limits.max_node_data_bytes,
            )
            if has_video:
                # a clip pasted (or brought back) is a finished video node
                done = await node_q.update_node(
                    store.db, made.id, version=seq, status=NodeStatus.COMPLETED
                )
                made = done or made
            return NodeCreated(node=made)

        changed = await publish_change(store, project_id, apply_node)
        ids[node.ref] = changed.data.node.id
        made_nodes.append(await presenter.node(changed.data.node))
    made_links: list[Connection] = []
    seen: set[tuple[UUID, UUID]] = set()
    for link in body.connections:
        source = ids.get(link.source) or UUID(link.source)
        target = ids.get(link.target) or UUID(link.target)
        if (source, target) in seen:
            continue
        seen.add((source, target))

        async def apply_link(
            seq: int,
            source: UUID = source,
            target: UUID = target,
            target_port: str | None = link.target_port,
        ) -> ConnectionCreated:
            await authorize(store, user.id, project_id, Action.EDIT)
            made = await insert_checked(
                store.db, project_id, source, target, target_port, version=seq
            )
            return ConnectionCreated(connection=made)

        try:
            link_change = await publish_change(store, project_id, apply_link)
        except (conn_q.DuplicateConnection, conn_q.MissingEndpoint, InvalidLink, WrongEnd):
            # already there, an end deleted meanwhile, or a port the rules refuse here (it
            # is full in this project): the nodes are pasted, the link is left out
            continue
        made_links.append(link_change.data.connection)
        if link.ref is not None:
            ids[link.ref] = link_change.data.connection.id
    return json_response(PasteResponse(nodes=made_nodes, connections=made_links, refs=ids), 201)
