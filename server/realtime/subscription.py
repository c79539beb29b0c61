"""Subscriptions: a connection (`Peer`) following projects, each through a `Subscription`.

A subscription buffers what its channel delivers while the client is caught
up (snapshot or replay), then goes live; it only ever lets through seq + 1,
so a gap makes the channel resync it. It knows its user's role in the
project, and an event that changes that role (`RoleChanges`, worked out by
membership.py) changes it the moment the event is sent; an event after which
the user may no longer read the project marks it `revoked`, and nothing
after that event is sent (the hub then ends it). Plain code: no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from uuid import UUID

from common.protocol import frames
from common.protocol.entities import Role
from common.protocol.frames import CloseCode, ErrorCode
from server.realtime.framing import encode_frame
from server.realtime.outbox import Outbox

#: what an event does to roles: user id → their role after it, or None when they may no
#: longer read the project (removed)
RoleChanges = Mapping[UUID, Role | None]


class Peer:
    """The hub's view of one websocket: its user, outbox, subscriptions and error count."""

    def __init__(
        self,
        user_id: UUID,
        outbox: Outbox,
        max_errors: int = 20,
        session: bytes | None = None,
        email: str = "",
    ) -> None:
        self.user_id = user_id
        #: shown beside the user's cursor to the others in a project (presence)
        self.email = email
        self.outbox = outbox
        #: the hash of the session token the handshake authenticated with
        self.session = session
        self.subscriptions: dict[UUID, Subscription] = {}
        self.errors = 0
        self.max_errors = max_errors

    def send(self, message: frames.ServerMessage) -> bool:
        """Encode and queue one frame for this connection only."""
        return self.outbox.offer(encode_frame(message))

    def client_error(
        self, code: ErrorCode, message: str, project_id: UUID | None = None, count: bool = True
    ) -> None:
        """Send an `error` frame; too many of them close the connection with 4400."""
        self.send(frames.Error(code=code.value, message=message, project_id=project_id))
        if count:
            self.errors += 1
            if self.errors >= self.max_errors:
                self.outbox.finish(CloseCode.TOO_MANY_ERRORS, "too many errors")


class Subscription:
    """One connection following one project: buffering while it catches up, then live.

    While not live, every event the channel delivers is buffered; `go_live`
    sends those after the seq the client got from its snapshot or replay.
    Once live, events are queued straight to the outbox. `seq` is the seq of
    the state the client holds.
    """

    def __init__(self, peer: Peer, project_id: UUID, presence: bool = False) -> None:
        self.peer = peer
        self.project_id = project_id
        #: the client asked to see who else is here, and to be shown to them
        self.presence = presence
        self.seq = -1
        self.live = False
        self.ended = False
        self.buffer: list[tuple[int, bytes, RoleChanges | None]] = []
        self.task: asyncio.Task[None] | None = None
        #: the user's role in the project as of `seq` (None until the access check)
        self.role: Role | None = None
        #: the seq at which the user joined the project: older resumes get a snapshot
        self.added_seq = 0
        #: an event sent on this subscription removed its user: send nothing more
        self.revoked = False

    def deliver(self, seq: int, frame: bytes, changes: RoleChanges | None = None) -> bool:
        """Take one event frame of the channel; False when it would leave a gap."""
        if changes is None and self.live and seq == self.seq + 1 and not self.revoked:
            # the common case, once per subscriber per event: the next seq, roles unchanged
            self.seq = seq
            self.peer.outbox.offer(frame)
            return True
        if self.revoked:
            return True
        if not self.live:
            self.buffer.append((seq, frame, changes))
            return True
        if seq <= self.seq:
            return True
        if seq != self.seq + 1:
            return False
        self.send(seq, frame, changes)
        return True

    def send(self, seq: int, frame: bytes, changes: RoleChanges | None = None) -> bool:
        """Send the event `seq` (the caller checked it is next) and apply what it does to roles.

        False when it revoked the subscription: the caller sends nothing more.
        """
        if self.revoked:
            return False
        self.seq = seq
        self.peer.outbox.offer(frame)
        if changes is not None and self.peer.user_id in changes:
            role = changes[self.peer.user_id]
            if role is None:
                self.revoked = True
                return False
            self.role = role
        return True

    def go_live(self) -> bool:
        """Send the buffered events after `seq` and go live; False on a gap."""
        buffered, self.buffer = self.buffer, []
        for seq, frame, changes in buffered:
            if seq <= self.seq:
                continue  # the snapshot or replay covered it
            if seq != self.seq + 1:
                return False
            if not self.send(seq, frame, changes):
                break  # revoked: the hub ends the subscription
        self.live = True
        return True
