"""Presence frames: who has a project open, their cursors, selections and "editing" markers.

Presence is ephemeral, like `job.progress`: no seq, never logged, coalesced
and droppable. A client tells the server about its tab with `presence`
frames (each member it sends replaces that member of its tab's state; a
member it leaves out stays as it was); the server sends `presence` frames
listing users — all of them (`full`) right after a subscribe, or those that
changed and those that `left` since the last frame. A user with several tabs
open is one entry: `tabs` counts them, and the cursor, selection and editing
marker are those of the tab that changed last. The rules (rates, limits,
expiry) are in docs/protocol.md, section "Presence".
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec

#: the most node ids one selection may list (a frame stays a few KB)
MAX_SELECTION = 100

Coordinate = Annotated[float, msgspec.Meta(ge=-1e7, le=1e7)]
Selection = Annotated[list[UUID], msgspec.Meta(max_length=MAX_SELECTION)]


class Cursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A pointer position in canvas coordinates (the nodes' `x`/`y` space, not the screen's)."""

    x: Coordinate
    y: Coordinate


class Presence(
    msgspec.Struct,
    tag="presence",
    tag_field="type",
    forbid_unknown_fields=True,
    frozen=True,
    omit_defaults=True,
):
    """Client → server: this tab's cursor, selection or editing marker in a followed project.

    Send only what changed; `null` clears a member (`cursor: null` when the
    pointer leaves the canvas). `editing` names the node whose text this tab
    is editing and needs a role that may edit (else `error forbidden_role`).
    """

    project_id: UUID
    cursor: Cursor | msgspec.UnsetType | None = msgspec.UNSET
    selection: Selection | msgspec.UnsetType = msgspec.UNSET
    editing: UUID | msgspec.UnsetType | None = msgspec.UNSET


class PresenceUser(msgspec.Struct, frozen=True):
    """One user who has the project open, in one or more tabs."""

    user_id: UUID
    email: str
    #: a CSS colour picked from the user id: the same in every tab and process
    color: str
    #: how many tabs (websocket subscriptions) of theirs follow the project
    tabs: int
    cursor: Cursor | None = None
    selection: list[UUID] = []
    editing: UUID | None = None


class PresenceUpdate(msgspec.Struct, tag="presence", tag_field="type", frozen=True):
    """Server → client: users who are here now (`full`: exactly these), or what changed.

    With `full` false, each listed user replaces the entry of that user and
    each id in `left` is gone; a client may lose such a frame under load, and
    then gets a `full` one soon after.
    """

    project_id: UUID
    users: list[PresenceUser]
    left: list[UUID] = []
    full: bool = False


#: the colours of users, picked by user id (readable on a light and a dark canvas)
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#469990",
    "#800000",
    "#808000",
    "#000075",
)


def color_of(user_id: UUID) -> str:
    """The user's colour: the same wherever it is computed."""
    return PALETTE[user_id.int % len(PALETTE)]
