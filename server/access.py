"""Who may do what: ONE decision, from (user, project, action), for every REST route and
websocket action.

`RIGHTS` is the whole policy: an owner manages, edits and reads; an editor
edits and reads; a viewer reads (and subscribes, and shows a cursor). A
stranger — no member row — is told the thing does not exist (404
`<thing>_not_found`), exactly as for something that does not exist; a
member whose role lacks the right gets 403 `forbidden_role`. Every decision
reads project_members in Postgres at the time of the request, so adding,
demoting or removing someone is in force the moment its change commits.
The hub (server/realtime/) asks `decide` too, with the role it read.
"""

from __future__ import annotations

import enum
from typing import Annotated
from uuid import UUID

import msgspec

from common.protocol.entities import Role
from db.changes import Store
from db.connections import Connection, get_connection
from db.jobs import Job, get_job
from db.members import Standing, standing
from db.nodes import Node, get_node_and_standing
from db.projects import Project, get_project_and_standing
from db.users import User
from server.errors import ApiError, not_found


class Action(enum.StrEnum):
    """What a request or websocket frame does to a project."""

    #: see the project, its nodes, connections, jobs and members; subscribe; show a cursor
    READ = "read"
    #: add, move, edit and delete nodes and connections; upload; generate; cancel;
    #: show an "editing" marker
    EDIT = "edit"
    #: add, change and remove members; invites; rename, delete, transfer the project
    MANAGE = "manage"
    #: remove oneself from the project
    LEAVE = "leave"


#: the policy, whole: what each role may do
RIGHTS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: frozenset({Action.READ, Action.EDIT, Action.LEAVE}),
    Role.VIEWER: frozenset({Action.READ, Action.LEAVE}),
}

#: a role as a request names it: checked by `grantable_role`, for a clear `invalid_role`
RoleName = Annotated[str, msgspec.Meta(max_length=32)]
#: the roles a member can be given; the owner's is only ever handed over by a transfer
GRANTABLE = (Role.EDITOR, Role.VIEWER)

_VERBS = {
    Action.READ: "open this project",
    Action.EDIT: "change this project",
    Action.MANAGE: "manage this project's members, name or ownership",
    Action.LEAVE: "leave this project",
}


class Decision(enum.Enum):
    """The answer of `decide`."""

    ALLOWED = "allowed"
    #: a stranger: answer as if the thing did not exist
    NOT_FOUND = "not_found"
    #: a member whose role lacks the right
    FORBIDDEN = "forbidden"


def decide(role: Role | None, action: Action) -> Decision:
    """The one decision: may someone with `role` (None: not a member) do `action`?"""
    if role is None:
        return Decision.NOT_FOUND
    return Decision.ALLOWED if action in RIGHTS[role] else Decision.FORBIDDEN


def forbidden_message(role: Role, action: Action) -> str:
    """What a refused member is told."""
    return f"As {'an' if role == Role.EDITOR else 'a'} {role.value} you may not {_VERBS[action]}."


def grantable_role(name: str) -> Role:
    """`editor` or `viewer`; 422 `invalid_role` for anything else (`owner` included)."""
    if name == Role.OWNER.value:
        raise ApiError(
            422,
            "invalid_role",
            "A project has one owner; hand it over with POST /api/projects/{id}/transfer.",
        )
    if name not in {r.value for r in GRANTABLE}:
        raise ApiError(422, "invalid_role", f"role must be editor or viewer, not {name!r}.")
    return Role(name)


def _require(member: Standing | None, action: Action, what: str) -> Standing:
    """The member's standing if `decide` allows `action`, else the REST refusal."""
    role = None if member is None else member.role
    decision = decide(role, action)
    if decision is Decision.NOT_FOUND:
        raise not_found(what)
    if decision is Decision.FORBIDDEN:
        assert role is not None
        raise ApiError(403, "forbidden_role", forbidden_message(role, action), role=role.value)
    assert member is not None
    return member


async def check(
    store: Store, user_id: UUID, project_id: UUID, action: Action
) -> tuple[Decision, Standing | None]:
    """The decision for (user, project, action), read from Postgres now, and the standing.

    The websocket path's entry (the hub turns a refusal into an `error` frame).
    """
    member = await standing(store.db, project_id, user_id)
    return decide(None if member is None else member.role, action), member


async def authorize(
    store: Store, user_id: UUID, project_id: UUID, action: Action, what: str = "project"
) -> Standing:
    """The user's standing in the project if they may do `action` there; ApiError otherwise.

    Called again inside a change, under the project's lock, so that a membership
    change that committed meanwhile wins; `what` names the thing a stranger is told
    does not exist.
    """
    return _require(await standing(store.db, project_id, user_id), action, what)


async def project_for(
    store: Store, user: User, project_id: UUID, action: Action
) -> tuple[Project, Standing]:
    """The project and the caller's standing in it, if they may do `action`."""
    found = await get_project_and_standing(store.db, project_id, user.id)
    if found is None:
        raise not_found("project")
    project, member = found
    return project, _require(member, action, "project")


async def node_for(store: Store, user: User, node_id: UUID, action: Action) -> Node:
    """A node of a project where the caller may do `action`; 404 `node_not_found` to strangers."""
    found = await get_node_and_standing(store.db, node_id, user.id)
    if found is None:
        raise not_found("node")
    node, member = found
    _require(member, action, "node")
    return node


async def connection_for(
    store: Store, user: User, connection_id: UUID, action: Action
) -> Connection:
    """A connection of a project where the caller may do `action`."""
    connection = await get_connection(store.db, connection_id)
    if connection is None:
        raise not_found("connection")
    _require(await standing(store.db, connection.project_id, user.id), action, "connection")
    return connection


async def job_for(store: Store, user: User, job_id: UUID, action: Action) -> Job:
    """A job of a project where the caller may do `action`."""
    job = await get_job(store.db, job_id)
    if job is None:
        raise not_found("job")
    _require(await standing(store.db, job.project_id, user.id), action, "job")
    return job
