"""Projects: list (owned and shared, with the caller's role), create, read, rename and
delete (owner only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import MemberProject, Role
from common.protocol.events import ProjectDeleted, ProjectUpdated
from db import projects as q
from db.changes import publish_change
from db.media import project_media
from db.projects import Project
from server.access import Action, authorize, project_for
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.openapi import api
from server.purge import delete_media
from server.responses import json_response
from server.state import app_state

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ProjectCard(MemberProject, frozen=True):
    """A project as the list shows it: the caller's role, and `poster_url` signing its newest
    video (else image)."""

    poster_url: str | None = None
    poster_kind: str | None = None


def _with_role(project: Project, role: Role) -> MemberProject:
    return MemberProject(**{f: getattr(project, f) for f in project.__struct_fields__}, role=role)


class ProjectBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of create and rename."""

    name: Name


@api(
    "Your projects, owned and shared: your role in each, and a poster of its latest output",
    response=list[ProjectCard],
)
async def list_projects(request: Request) -> Response:
    """GET /api/projects: every project the caller is a member of, newest output as poster."""
    user = await require_user(request)
    state = app_state(request)
    projects = await q.list_member_projects(state.store.db, user.id)
    media = await q.latest_media(state.store.db, user.id)
    presenter = state.presenter
    cards = []
    for project in projects:
        key, kind = media.get(project.id, (None, None))
        url = await presenter.storage.sign_url(key, presenter.url_ttl_s) if key else None
        fields = msgspec.structs.asdict(project)
        cards.append(ProjectCard(**fields, poster_url=url, poster_kind=kind if url else None))
    return json_response(cards)


@api("Create a project", body=ProjectBody, response=MemberProject, status=201, errors=[403])
async def create_project(request: Request) -> Response:
    """POST /api/projects: a new empty project."""
    user = await require_user(request)
    body = await decode_body(request, ProjectBody)
    project = await q.create_project(
        app_state(request).store.db, user.id, body.name.strip() or body.name
    )
    return json_response(_with_role(project, Role.OWNER), 201)


@api("One project, with your role in it", response=MemberProject)
async def get_project(request: Request) -> Response:
    """GET /api/projects/{project_id}."""
    user = await require_user(request)
    project, member = await project_for(
        app_state(request).store, user, path_uuid(request, "project_id"), Action.READ
    )
    return json_response(_with_role(project, member.role))


@api("Rename a project", body=ProjectBody, response=Project, errors=[403])
async def rename_project(request: Request) -> Response:
    """PATCH /api/projects/{project_id}: rename (a change: it carries a seq)."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    await project_for(store, user, project_id, Action.MANAGE)
    body = await decode_body(request, ProjectBody)

    async def apply(seq: int) -> ProjectUpdated:
        # again under the project's lock: a demotion that committed meanwhile wins
        await authorize(store, user.id, project_id, Action.MANAGE)
        return ProjectUpdated(project=await q.rename_project(store.db, project_id, body.name))

    change = await publish_change(store, project_id, apply)
    return json_response(change.data.project)


@api("Delete a project and everything in it", status=204, errors=[403])
async def delete_project(request: Request) -> Response:
    """DELETE /api/projects/{project_id}: the project and everything in it."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    await project_for(store, user, project_id, Action.MANAGE)

    doomed: list[str] = []

    async def apply(seq: int) -> ProjectDeleted:
        await authorize(store, user.id, project_id, Action.MANAGE)
        doomed.extend(await project_media(store.db, project_id))
        await q.delete_project(store.db, project_id)
        return ProjectDeleted(project_id=project_id)

    # the log goes with the project, so this last event is published but not logged
    await publish_change(store, project_id, apply, log_event=False)
    await delete_media(app_state(request).storage, doomed)
    return Response(status_code=204)
