"""Members of a project: list, add by email, change a role, remove (or leave), transfer ownership.

Each change is one seq'd event of the project (`member.added`,
`member.updated`, `member.removed`, `project.transferred`) made under the
project's lock, so the decision and the write cannot be overtaken by another
membership change, and every open canvas (and the hub, which ends a removed
member's subscriptions) hears of it in seq order. A project always has
exactly one owner: they cannot be demoted or removed, only replaced by a
transfer.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import Member, Project, Role
from common.protocol.events import MemberAdded, MemberRemoved, MemberUpdated, ProjectTransferred
from db import members as q
from db.changes import Store, publish_change
from db.projects import set_owner
from db.users import get_user_by_email
from server.access import Action, RoleName, authorize, grantable_role, project_for
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.errors import ApiError
from server.openapi import api
from server.responses import json_response
from server.state import app_state


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/members."""

    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    role: RoleName


class MemberPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Body of PATCH /api/projects/{project_id}/members/{user_id}."""

    role: RoleName


class TransferBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/transfer: the member who becomes the owner."""

    user_id: UUID


def _last_owner() -> ApiError:
    return ApiError(
        409,
        "last_owner",
        "The owner cannot be demoted or removed: transfer ownership to another member first.",
    )


def _member_not_found() -> ApiError:
    return ApiError(404, "member_not_found", "No member with that user id in this project.")


async def _current(store: Store, project_id: UUID, user_id: UUID) -> Member:
    member = await q.get_member(store.db, project_id, user_id)
    if member is None:
        raise _member_not_found()
    return member


@api("Members of a project and their roles", response=list[Member])
async def list_members(request: Request) -> Response:
    """GET /api/projects/{project_id}/members: the owner first, then by when they joined."""
    user = await require_user(request)
    store = app_state(request).store
    project, _ = await project_for(store, user, path_uuid(request, "project_id"), Action.READ)
    return json_response(await q.list_members(store.db, project.id))


@api(
    "Add someone with an account as editor or viewer",
    body=MemberCreate,
    response=Member,
    status=201,
    errors=[403, 404, 409],
)
async def add_member(request: Request) -> Response:
    """POST /api/projects/{project_id}/members: event `member.added`."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    await project_for(store, user, project_id, Action.MANAGE)
    body = await decode_body(request, MemberCreate)
    role = grantable_role(body.role)
    invitee = await get_user_by_email(store.db, body.email)
    if invitee is None:
        raise ApiError(404, "user_not_found", "No account with that email; send an invite link.")
    if invitee.id == user.id:
        raise ApiError(409, "already_member", "You are this project's owner already.")

    async def apply(seq: int) -> MemberAdded:
        await authorize(store, user.id, project_id, Action.MANAGE)
        try:
            member = await q.add_member(store.db, project_id, invitee.id, role, seq=seq)
        except q.AlreadyMember:
            raise ApiError(
                409, "already_member", f"{invitee.email} is a member of this project already."
            ) from None
        return MemberAdded(member=member, by=user.id)

    change = await publish_change(store, project_id, apply)
    return json_response(change.data.member, 201)


@api(
    "Change a member's role",
    body=MemberPatch,
    response=Member,
    errors=[403, 404, 409],
)
async def update_member(request: Request) -> Response:
    """PATCH /api/projects/{project_id}/members/{user_id}: event `member.updated`."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    target = path_uuid(request, "user_id")
    store = app_state(request).store
    await project_for(store, user, project_id, Action.MANAGE)
    body = await decode_body(request, MemberPatch)
    role = grantable_role(body.role)
    member = await _current(store, project_id, target)
    if member.role == Role.OWNER:
        raise _last_owner()
    if member.role == role:
        return json_response(member)  # nothing changes, so no event

    async def apply(seq: int) -> MemberUpdated:
        await authorize(store, user.id, project_id, Action.MANAGE)
        if (await _current(store, project_id, target)).role == Role.OWNER:
            raise _last_owner()
        updated = await q.set_role(store.db, project_id, target, role)
        if updated is None:
            raise _member_not_found()
        return MemberUpdated(member=updated, by=user.id)

    change = await publish_change(store, project_id, apply)
    return json_response(change.data.member)


@api("Remove a member, or leave a project yourself", status=204, errors=[403, 404, 409])
async def remove_member(request: Request) -> Response:
    """DELETE /api/projects/{project_id}/members/{user_id}: event `member.removed`.

    The owner removes anyone else; any other member may remove themselves.
    """
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    target = path_uuid(request, "user_id")
    store = app_state(request).store
    action = Action.LEAVE if target == user.id else Action.MANAGE
    await project_for(store, user, project_id, action)
    member = await _current(store, project_id, target)
    if member.role == Role.OWNER:
        raise _last_owner()

    async def apply(seq: int) -> MemberRemoved:
        await authorize(store, user.id, project_id, action)
        if (await _current(store, project_id, target)).role == Role.OWNER:
            raise _last_owner()
        if not await q.remove_member(store.db, project_id, target):
            raise _member_not_found()
        return MemberRemoved(user_id=target, by=user.id)

    await publish_change(store, project_id, apply)
    return Response(status_code=204)


@api(
    "Hand the project over to another member (you become an editor)",
    body=TransferBody,
    response=Project,
    errors=[403, 404, 409],
)
async def transfer_project(request: Request) -> Response:
    """POST /api/projects/{project_id}/transfer: event `project.transferred`."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    await project_for(store, user, project_id, Action.MANAGE)
    body = await decode_body(request, TransferBody)
    if body.user_id == user.id:
        raise ApiError(409, "already_owner", "You own this project already.")
    await _current(store, project_id, body.user_id)

    async def apply(seq: int) -> ProjectTransferred:
        await authorize(store, user.id, project_id, Action.MANAGE)
        await _current(store, project_id, body.user_id)
        # the old owner steps down first: the one-owner index is checked per statement
        previous = await q.set_role(store.db, project_id, user.id, Role.EDITOR)
        owner = await q.set_role(store.db, project_id, body.user_id, Role.OWNER)
        assert previous is not None and owner is not None
        project = await set_owner(store.db, project_id, body.user_id)
        return ProjectTransferred(project=project, owner=owner, previous_owner=previous, by=user.id)

    change = await publish_change(store, project_id, apply)
    return json_response(change.data.project)
