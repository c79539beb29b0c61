"""Projects: list, create, read, rename, delete (owner only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.events import ProjectDeleted, ProjectUpdated
from db import projects as q
from db.changes import publish_change
from db.media import project_media
from db.projects import Project
from server.access import owned_project
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.openapi import api
from server.purge import delete_media
from server.responses import json_response
from server.state import app_state

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ProjectCard(Project, frozen=True):
    """A project as the list shows it: `poster_url` signs its newest video (else image)."""

    poster_url: str | None = None
    poster_kind: str | None = None


class ProjectBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of create and rename."""

    name: Name


@api("Your projects", response=list[ProjectCard])
async def list_projects(request: Request) -> Response:
    """GET /api/projects: the caller's projects, each with a poster of its latest output."""
    user = await require_user(request)
    state = app_state(request)
    projects = await q.list_projects(state.store.db, user.id)
    media = await q.latest_media(state.store.db, user.id)
    presenter = state.presenter
    cards = []
    for project in projects:
        key, kind = media.get(project.id, (None, None))
        url = await presenter.storage.sign_url(key, presenter.url_ttl_s) if key else None
        fields = msgspec.structs.asdict(project)
        cards.append(ProjectCard(**fields, poster_url=url, poster_kind=kind if url else None))
    return json_response(cards)


@api("Create a project", body=ProjectBody, response=Project, status=201, errors=[403])
async def create_project(request: Request) -> Response:
    """POST /api/projects: a new empty project."""
    user = await require_user(request)
    body = await decode_body(request, ProjectBody)
    project = await q.create_project(
        app_state(request).store.db, user.id, body.name.strip() or body.name
    )
    return json_response(project, 201)


@api("One project", response=Project)
async def get_project(request: Request) -> Response:
    """GET /api/projects/{project_id}."""
    user = await require_user(request)
    return json_response(
        await owned_project(app_state(request).store, user, path_uuid(request, "project_id"))
    )


@api("Rename a project", body=ProjectBody, response=Project, errors=[403])
async def rename_project(request: Request) -> Response:
    """PATCH /api/projects/{project_id}: rename (a change: it carries a seq)."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    body = await decode_body(request, ProjectBody)
    store = app_state(request).store
    await owned_project(store, user, project_id)

    async def apply(seq: int) -> ProjectUpdated:
        return ProjectUpdated(project=await q.rename_project(store.db, project_id, body.name))

    change = await publish_change(store, project_id, apply)
    return json_response(change.data.project)


@api("Delete a project and everything in it", status=204, errors=[403])
async def delete_project(request: Request) -> Response:
    """DELETE /api/projects/{project_id}: the project and everything in it."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    await owned_project(store, user, project_id)

    doomed: list[str] = []

    async def apply(seq: int) -> ProjectDeleted:
        doomed.extend(await project_media(store.db, project_id))
        await q.delete_project(store.db, project_id)
        return ProjectDeleted(project_id=project_id)

    # the log goes with the project, so this last event is published but not logged
    await publish_change(store, project_id, apply, log_event=False)
    await delete_media(app_state(request).storage, doomed)
    return Response(status_code=204)
