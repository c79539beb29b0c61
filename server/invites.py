"""Invitation links: the owner makes, lists and revokes them; a logged-in user accepts one.

A link carries a random token; only its SHA-256 is stored (as sessions do),
so a database dump holds no usable link. A link admits one person once, as
editor or viewer, until it expires; used, revoked and expired links answer
410 `invite_expired`. Accepting is the change `member.added`, made under the
project's lock together with marking the link used.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import Member, MemberProject, Role
from common.protocol.events import MemberAdded
from db import invites as q
from db import members as member_q
from db.changes import publish_change
from db.invites import Invite, InviteStatus
from db.projects import get_project
from server.access import Action, RoleName, grantable_role, project_for
from server.auth import hash_token, require_user
from server.bodies import decode_body, path_uuid
from server.errors import ApiError
from server.openapi import api
from server.responses import json_response
from server.state import app_state

#: a link lives 7 days unless asked otherwise, at most 30
DEFAULT_EXPIRES_IN_S = 7 * 24 * 3600
MAX_EXPIRES_IN_S = 30 * 24 * 3600


class InviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/projects/{project_id}/invites."""

    role: RoleName
    expires_in_s: Annotated[int, msgspec.Meta(ge=60, le=MAX_EXPIRES_IN_S)] = DEFAULT_EXPIRES_IN_S


class InviteLink(msgspec.Struct):
    """A new invitation: the token is shown this once, and never again."""

    id: UUID
    token: str
    url: str
    role: Role
    expires_at: datetime


class Accepted(msgspec.Struct):
    """What accepting an invitation made of you: the project, with your role, and your member."""

    project: MemberProject
    member: Member


def _expired(invite: Invite) -> ApiError:
    return ApiError(
        410,
        "invite_expired",
        f"This invitation link was {invite.status.value}; ask the owner for a new one.",
    )


@api(
    "Make an invitation link (editor or viewer)",
    body=InviteCreate,
    response=InviteLink,
    status=201,
    errors=[403],
)
async def create_invite(request: Request) -> Response:
    """POST /api/projects/{project_id}/invites: `{token, url, expires_at}`, shown once."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    state = app_state(request)
    await project_for(state.store, user, project_id, Action.MANAGE)
    body = await decode_body(request, InviteCreate)
    role = grantable_role(body.role)
    token = secrets.token_urlsafe(32)
    invite = await q.create_invite(
        state.store.db, project_id, hash_token(token), role, user.id, body.expires_in_s
    )
    url = f"{state.settings.public_url.rstrip('/')}/?invite={token}"
    link = InviteLink(id=invite.id, token=token, url=url, role=role, expires_at=invite.expires_at)
    return json_response(link, 201)


@api("Invitation links of a project, newest first (never their tokens)", response=list[Invite])
async def list_invites(request: Request) -> Response:
    """GET /api/projects/{project_id}/invites: the last 100, each with its status."""
    user = await require_user(request)
    store = app_state(request).store
    project_id = path_uuid(request, "project_id")
    await project_for(store, user, project_id, Action.MANAGE)
    return json_response(await q.list_invites(store.db, project_id))


@api("Revoke an invitation link", status=204, errors=[403])
async def revoke_invite(request: Request) -> Response:
    """DELETE /api/projects/{project_id}/invites/{invite_id}: idempotent; a used link stays used."""
    user = await require_user(request)
    store = app_state(request).store
    project_id = path_uuid(request, "project_id")
    await project_for(store, user, project_id, Action.MANAGE)
    if await q.revoke_invite(store.db, project_id, path_uuid(request, "invite_id")) is None:
        raise ApiError(404, "invite_not_found", "No invitation with that id in this project.")
    return Response(status_code=204)


@api("Accept an invitation link", response=Accepted, errors=[404, 409, 410])
async def accept_invite(request: Request) -> Response:
    """POST /api/invites/{token}/accept: the caller joins with the link's role (`member.added`)."""
    user = await require_user(request)
    store = app_state(request).store
    token = request.path_params["token"]
    invite = await q.find_invite(store.db, hash_token(token)) if len(token) <= 128 else None
    if invite is None:
        raise ApiError(404, "invite_not_found", "No invitation with that token.")
    if invite.status is not InviteStatus.PENDING:
        raise _expired(invite)
    if await member_q.standing(store.db, invite.project_id, user.id) is not None:
        # the link stays unused: it was meant for someone else
        raise ApiError(409, "already_member", "You are a member of this project already.")

    async def apply(seq: int) -> MemberAdded:
        claimed = await q.claim_invite(store.db, invite.id, user.id)
        if claimed is None:
            current = await q.find_invite(store.db, hash_token(token))
            raise _expired(current or invite)
        try:
            member = await member_q.add_member(
                store.db, invite.project_id, user.id, invite.role, seq=seq
            )
        except member_q.AlreadyMember:
            raise ApiError(
                409, "already_member", "You are a member of this project already."
            ) from None
        return MemberAdded(member=member, by=user.id)

    change = await publish_change(store, invite.project_id, apply)
    member = change.data.member
    project = await get_project(store.db, invite.project_id)
    if project is None:
        raise ApiError(404, "invite_not_found", "No invitation with that token.")
    fields = {f: getattr(project, f) for f in project.__struct_fields__}
    return json_response(Accepted(project=MemberProject(**fields, role=member.role), member=member))
