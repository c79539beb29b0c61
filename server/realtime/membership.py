"""What a seq'd event does to the roles of the people following a project.

Membership changes are events like any other; the channel works out here,
once per event, whose role it changes, and the subscriptions of those users
apply it as they send the event (subscription.py). Whether the new role may
still follow the project is the one access decision's (server/access.py): a
demoted viewer still may, a removed member may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from common.protocol.entities import Member, Role
from common.protocol.events import (
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
    Opaque,
    Payload,
    ProjectTransferred,
)
from common.protocol.frames import ErrorCode
from db.changes import Store
from server.access import Action, Decision, check, decide
from server.realtime.config import HubError
from server.realtime.subscription import RoleChanges, Subscription

#: what a removed member is told, right after the event that removed them
REVOKED = "You were removed from this project; no more of its frames follow."


async def standing(store: Store, user_id: UUID, project_id: UUID) -> tuple[Role, int]:
    """May the user follow the project? Their role and the seq they joined at; HubError if not.

    A stranger is told the project does not exist, as over REST.
    """
    decision, member = await check(store, user_id, project_id, Action.READ)
    if decision is not Decision.ALLOWED or member is None:
        raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
    return member.role, member.added_seq


def readmit(sub: Subscription, members: Sequence[Member]) -> None:
    """Check the subscription's user against a snapshot's members (read after `admit`)."""
    role = next((m.role for m in members if m.user_id == sub.peer.user_id), None)
    if decide(role, Action.READ) is not Decision.ALLOWED:
        if sub.seq < 0:  # never live: to them it is a project that does not exist
            raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
        raise HubError(ErrorCode.ACCESS_REVOKED, REVOKED)
    sub.role = role


def role_changes(data: Payload | Opaque) -> RoleChanges | None:
    """user id → role after the event (None: may no longer read), or None for other events."""
    changed: dict[UUID, Role | None]
    if isinstance(data, MemberAdded | MemberUpdated):
        changed = {data.member.user_id: data.member.role}
    elif isinstance(data, MemberRemoved):
        changed = {data.user_id: None}
    elif isinstance(data, ProjectTransferred):
        changed = {
            data.previous_owner.user_id: data.previous_owner.role,
            data.owner.user_id: data.owner.role,
        }
    else:
        return None
    return {
        user_id: role if decide(role, Action.READ) is Decision.ALLOWED else None
        for user_id, role in changed.items()
    }
