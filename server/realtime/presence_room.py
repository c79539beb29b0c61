"""One project's presence in this process: every tab's state, merged per user into frames.

A tab is one subscription (one browser tab following the project); its key
is `{process id}:{n}`, so the process that holds it can be told from the key
and all its tabs dropped when it dies. The room keeps every tab it knows of,
local and remote, marks the users whose entry changed, and makes the frames:
a diff of those users (and who left) for everyone, a `full` list for a
subscription that just joined or lost a diff to backpressure. Plain code: no
I/O; presence.py drives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import msgspec

from common.protocol.presence import Cursor, PresenceUpdate, PresenceUser, color_of


class TabState(msgspec.Struct, frozen=True):
    """One tab's presence, as the Redis hash and the presence channel carry it."""

    user_id: UUID
    email: str
    cursor: Cursor | None = None
    selection: list[UUID] = []
    editing: UUID | None = None
    #: when the tab last changed (its process's clock): the latest tab speaks for its user
    at: float = 0.0


class BusMessage(msgspec.Struct, frozen=True):
    """What a process publishes on a project's presence channel: its tabs that changed."""

    proc: str
    #: tab key → its state now, or None when it left
    tabs: dict[str, TabState | None]


def proc_of(key: str) -> str:
    """The id of the process holding the tab `key`."""
    return key.split(":", 1)[0]


def merge_user(tabs: Iterable[TabState]) -> PresenceUser:
    """One user's entry from their tabs: the latest tab's cursor and selection, the latest
    editing marker of any of them."""
    ordered = sorted(tabs, key=lambda t: t.at)
    latest = ordered[-1]
    editing = next((t.editing for t in reversed(ordered) if t.editing is not None), None)
    return PresenceUser(
        user_id=latest.user_id,
        email=latest.email,
        color=color_of(latest.user_id),
        tabs=len(ordered),
        cursor=latest.cursor,
        selection=latest.selection,
        editing=editing,
    )


class Room:
    """Every tab of one project this process knows of, and who changed since the last frame."""

    def __init__(self, project_id: UUID, name: str) -> None:
        self.project_id = project_id
        #: the presence channel's name
        self.name = name
        self.tabs: dict[str, TabState] = {}
        #: counts every change of `tabs`; `changed_at[key]` is the count at its last change,
        #: so a read from Redis started before a change cannot undo it
        self.version = 0
        self.changed_at: dict[str, int] = {}
        self.dirty: set[UUID] = set()

    def set_tab(self, key: str, state: TabState | None) -> None:
        """A tab's state now (None: it left); marks its user for the next frame."""
        old = self.tabs.get(key)
        if state is None:
            if old is None:
                return
            del self.tabs[key]
        else:
            if old == state:
                return
            self.tabs[key] = state
            self.dirty.add(state.user_id)
        if old is not None:
            self.dirty.add(old.user_id)
        self.version += 1
        self.changed_at[key] = self.version

    def merge_read(self, read: dict[str, TabState], started_at: int, own: str) -> None:
        """Take what a read of the Redis hash found, begun when `version` was `started_at`.

        What this room learnt after the read began is newer and wins; tabs of this
        process (`own`) are the room's own to say.
        """
        for key in set(self.tabs) | set(read):
            if proc_of(key) == own or self.changed_at.get(key, 0) > started_at:
                continue
            self.set_tab(key, read.get(key))
        # tombstones only matter to a read in flight, and this one is done
        self.changed_at = {k: v for k, v in self.changed_at.items() if k in self.tabs}

    def drop_procs(self, dead: set[str]) -> list[str]:
        """Forget every tab of these processes; the keys dropped."""
        gone = [key for key in self.tabs if proc_of(key) in dead]
        for key in gone:
            self.set_tab(key, None)
        return gone

    def procs(self) -> set[str]:
        """The processes holding tabs here."""
        return {proc_of(key) for key in self.tabs}

    def _users(self) -> dict[UUID, list[TabState]]:
        by_user: dict[UUID, list[TabState]] = {}
        for tab in self.tabs.values():
            by_user.setdefault(tab.user_id, []).append(tab)
        return by_user

    def take_diff(self) -> PresenceUpdate | None:
        """The frame of the users that changed since the last call (None if none did)."""
        if not self.dirty:
            return None
        by_user = self._users()
        users = [merge_user(by_user[u]) for u in sorted(self.dirty) if u in by_user]
        left = sorted(u for u in self.dirty if u not in by_user)
        self.dirty = set()
        return PresenceUpdate(project_id=self.project_id, users=users, left=left)

    def full(self) -> PresenceUpdate:
        """Everyone who is here now."""
        by_user = self._users()
        users = [merge_user(by_user[u]) for u in sorted(by_user)]
        return PresenceUpdate(project_id=self.project_id, users=users, full=True)
