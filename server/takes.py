"""Takes: a node's outputs, newest first; choosing the active one; deleting one with its media.

Every change is one seq'd event: `node.active_take_changed` when a user picks
a take, `take.deleted` when one goes (with the node as it is then: when the
active take went, the newest remaining one is active, or none). A deleted
take's media is removed from storage after the commit, so a failed delete
leaves an unreachable object at worst, never a take without its media.
"""

from __future__ import annotations

import logging
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import Node, NodeType, Take
from common.protocol.events import NodeActiveTakeChanged, TakeDeleted
from db import nodes as node_q
from db import takes as q
from db.changes import publish_change
from server.access import Action, authorize, node_for
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.errors import ApiError, not_found
from server.openapi import api
from server.responses import json_response
from server.state import app_state

log = logging.getLogger(__name__)

#: node type → the data key that mirrors its active take's media (what the presenter signs)
MEDIA_FIELDS = {NodeType.VIDEO: "video_key", NodeType.IMAGE_GEN: "image_key"}
DEFAULT_PAGE = 20
MAX_PAGE = 100


class TakePage(msgspec.Struct, frozen=True):
    """A page of a node's takes, newest first; `next_before` asks for the page after it."""

    takes: list[Take]
    next_before: UUID | None


class ActiveTake(msgspec.Struct, forbid_unknown_fields=True):
    """Body of PUT /api/nodes/{node_id}/active-take."""

    take_id: UUID


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(422, "invalid_limit", f"limit must be a whole number from 1 to {MAX_PAGE}.")
    return int(raw)


@api(
    "A node's takes, newest first",
    response=TakePage,
    query=[("limit", "integer", False), ("before", "string", False)],
)
async def list_takes(request: Request) -> Response:
    """GET /api/nodes/{node_id}/takes?limit=&before=: a page of takes, media URLs signed now."""
    user = await require_user(request)
    state = app_state(request)
    node = await node_for(state.store, user, path_uuid(request, "node_id"), Action.READ)
    limit = _limit(request)
    before = None
    raw_before = request.query_params.get("before")
    if raw_before is not None:
        try:
            before = await q.get_take(state.store.db, UUID(raw_before))
        except ValueError:
            before = None
        if before is None or before.node_id != node.id:
            raise ApiError(422, "invalid_before", "before must name a take of this node.")
    takes = await q.list_takes(state.store.db, node.id, limit=limit + 1, before=before)
    page, more = takes[:limit], len(takes) > limit
    presented = [await state.presenter.take(t) for t in page]
    next_before = page[-1].id if more else None
    return json_response(TakePage(takes=presented, next_before=next_before))


@api(
    "Choose the take a node shows and feeds downstream",
    body=ActiveTake,
    response=Node,
    errors=[403],
)
async def set_active_take(request: Request) -> Response:
    """PUT /api/nodes/{node_id}/active-take {take_id}: event `node.active_take_changed`."""
    user = await require_user(request)
    node_id = path_uuid(request, "node_id")
    body = await decode_body(request, ActiveTake)
    state = app_state(request)
    store = state.store
    node = await node_for(store, user, node_id, Action.EDIT)

    async def apply(seq: int) -> NodeActiveTakeChanged:
        # again under the project's lock: a removal that committed meanwhile wins
        await authorize(store, user.id, node.project_id, Action.EDIT, "node")
        # read under the project's lock: a take deleted a moment ago is not chosen
        take = await q.get_take(store.db, body.take_id)
        if take is None or take.node_id != node_id:
            raise ApiError(422, "invalid_take", "take_id must name a take of this node.")
        updated = await node_q.update_node(
            store.db,
            node_id,
            version=seq,
            set_active_take=True,
            active_take_id=take.id,
            data_patch={MEDIA_FIELDS[node.type]: take.media_key},
        )
        if updated is None:
            raise not_found("node")
        return NodeActiveTakeChanged(node=updated, take_id=take.id)

    change = await publish_change(store, node.project_id, apply)
    return json_response(await state.presenter.node(change.data.node))


@api("Delete a take and its media", status=204, errors=[403])
async def delete_take(request: Request) -> Response:
    """DELETE /api/takes/{take_id}: event `take.deleted`; its media goes after the commit."""
    user = await require_user(request)
    take_id = path_uuid(request, "take_id")
    state = app_state(request)
    store = state.store
    take = await q.get_take(store.db, take_id)
    if take is None:
        raise not_found("take")
    await authorize(store, user.id, take.project_id, Action.EDIT, "take")

    async def apply(seq: int) -> TakeDeleted:
        await authorize(store, user.id, take.project_id, Action.EDIT, "take")
        node = await node_q.get_node(store.db, take.node_id)
        deleted = await q.delete_take(store.db, take_id)
        if node is None or deleted is None:
            raise not_found("take")
        if node.active_take_id == take_id:
            # a node never shows a deleted take: the newest remaining one, or none
            newest = await q.newest_take(store.db, node.id)
            field = MEDIA_FIELDS.get(node.type, "video_key")
            moved = await node_q.update_node(
                store.db,
                node.id,
                version=seq,
                set_active_take=True,
                active_take_id=None if newest is None else newest.id,
                data_patch=None if newest is None else {field: newest.media_key},
                data_remove=(field,) if newest is None else (),
            )
            node = moved or node
        return TakeDeleted(take_id=take_id, node=node)

    await publish_change(store, take.project_id, apply)
    try:
        await state.storage.delete(take.media_key)
    except Exception as exc:  # the take is gone; an object left behind is unreachable
        log.warning("take %s: its media %s stays in storage: %s", take_id, take.media_key, exc)
    return Response(status_code=204)
