"""Projects: list, create, read, rename, delete (owner only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from db import projects as q
from db.changes import Store, publish_change
from db.projects import Project
from server.access import owned_project
from server.auth import require_user
from server.bodies import decode_body, path_uuid
from server.openapi import api
from server.responses import json_response

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ProjectCard(Project, frozen=True):
    """A project as the list shows it: `poster_url` signs its newest video (else image)."""

    poster_url: str | None = None
    poster_kind: str | None = None


class ProjectBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of create and rename."""

    name: Name


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@api("Your projects", response=list[ProjectCard])
async def list_projects(request: Request) -> Response:
    """GET /api/projects: the caller's projects, each with a poster of its latest output."""
    user = await require_user(request)
    db = _store(request).db
    projects = await q.list_projects(db, user.id)
    media = await q.latest_media(db, user.id)
    presenter = request.app.state.presenter
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
    project = await q.create_project(_store(request).db, user.id, body.name.strip() or body.name)
    return json_response(project, 201)


@api("One project", response=Project)
async def get_project(request: Request) -> Response:
    """GET /api/projects/{project_id}."""
    user = await require_user(request)
    return json_response(
        await owned_project(_store(request), user, path_uuid(request, "project_id"))
    )


@api("Rename a project", body=ProjectBody, response=Project, errors=[403])
async def rename_project(request: Request) -> Response:
    """PATCH /api/projects/{project_id}: rename (a change: it carries a seq)."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    body = await decode_body(request, ProjectBody)
    store = _store(request)
    await owned_project(store, user, project_id)

    async def apply() -> dict[str, object]:
        return {"project": await q.rename_project(store.db, project_id, body.name)}

    _, data = await publish_change(store, project_id, "project.updated", apply)
    return json_response(data["project"])


@api("Delete a project and everything in it", status=204, errors=[403])
async def delete_project(request: Request) -> Response:
    """DELETE /api/projects/{project_id}: the project and everything in it."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = _store(request)
    await owned_project(store, user, project_id)

    async def apply() -> dict[str, object]:
        await q.delete_project(store.db, project_id)
        return {"project_id": project_id}

    # the log goes with the project, so this last event is published but not logged
    await publish_change(store, project_id, "project.deleted", apply, log_event=False)
    return Response(status_code=204)
