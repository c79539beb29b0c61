"""Subscriptions: a connection (`Peer`) following projects, each through a `Subscription`.

A subscription buffers what its channel delivers while the client is caught
up (snapshot or replay), then goes live; it only ever lets through seq + 1,
so a gap makes the channel resync it. Plain code: no I/O.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from common.protocol import frames
from common.protocol.frames import CloseCode, ErrorCode
from server.realtime.outbox import Outbox


class Peer:
    """The hub's view of one websocket: its user, outbox, subscriptions and error count."""

    def __init__(
        self, user_id: UUID, outbox: Outbox, max_errors: int = 20, session: bytes | None = None
    ) -> None:
        self.user_id = user_id
        self.outbox = outbox
        #: the hash of the session token the handshake authenticated with
        self.session = session
        self.subscriptions: dict[UUID, Subscription] = {}
        self.errors = 0
        self.max_errors = max_errors

    def send(self, message: frames.ServerMessage) -> bool:
        """Encode and queue one frame for this connection only."""
        return self.outbox.offer(frames.encode(message))

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

    def __init__(self, peer: Peer, project_id: UUID) -> None:
        self.peer = peer
        self.project_id = project_id
        self.seq = -1
        self.live = False
        self.ended = False
        self.buffer: list[tuple[int, str]] = []
        self.task: asyncio.Task[None] | None = None

    def deliver(self, seq: int, frame: str) -> bool:
        """Take one event frame of the channel; False when it would leave a gap."""
        if not self.live:
            self.buffer.append((seq, frame))
            return True
        if seq <= self.seq:
            return True
        if seq != self.seq + 1:
            return False
        self.seq = seq
        self.peer.outbox.offer(frame)
        return True

    def go_live(self) -> bool:
        """Send the buffered events after `seq` and go live; False on a gap."""
        buffered, self.buffer = self.buffer, []
        for seq, frame in buffered:
            if seq <= self.seq:
                continue  # the snapshot or replay covered it
            if seq != self.seq + 1:
                return False
            self.seq = seq
            self.peer.outbox.offer(frame)
        self.live = True
        return True
