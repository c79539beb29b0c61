"""Presence and membership rules without sockets: the room, the coalescing, the role changes.

The first half drives the plain parts (Room, merge_user, role_changes,
Subscription, the mirror) by hand; the second runs a PresenceHub against the
test run's Redis with Peers whose Outboxes the test reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec
import pytest

from common import protocol
from common.protocol.mirror import Mirror
from common.protocol.presence import Cursor, PresenceUpdate, color_of
from db.changes import Store
from server.realtime import HubConfig
from server.realtime.framing import payload_of
from server.realtime.membership import role_changes
from server.realtime.outbox import Outbox
from server.realtime.presence import PresenceHub
from server.realtime.presence_room import Room, TabState, merge_user
from server.realtime.subscription import Peer, Subscription
from tests.support.services import Services

PROJECT = UUID(int=42)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def tab(user: UUID, at: float, **kw: object) -> TabState:
    """A tab of `user` changed at `at`."""
    return TabState(user_id=user, email=f"{user.int}@example.com", at=at, **kw)  # type: ignore[arg-type]


# -- the room ---------------------------------------------------------------------


def test_a_users_tabs_merge_into_one_entry() -> None:
    """Tabs count; the latest tab's cursor and selection show; an editing marker of any tab shows."""
    u = uuid4()
    node = uuid4()
    merged = merge_user(
        [
            tab(u, 1.0, cursor=Cursor(x=1, y=1), editing=node),
            tab(u, 3.0, cursor=Cursor(x=3, y=3), selection=[node]),
            tab(u, 2.0, cursor=None),
        ]
    )
    assert merged.tabs == 3 and merged.cursor == Cursor(x=3, y=3)
    assert merged.selection == [node] and merged.editing == node
    assert merged.color == color_of(u) == color_of(UUID(str(u)))


def test_the_room_sends_who_changed_and_who_left() -> None:
    """A diff lists the changed users and those whose last tab went; a full frame lists everyone."""
    room = Room(PROJECT, "ch")
    a, b = uuid4(), uuid4()
    room.set_tab("p1:1", tab(a, 1))
    room.set_tab("p1:2", tab(b, 1))
    diff = room.take_diff()
    assert diff is not None and {u.user_id for u in diff.users} == {a, b} and not diff.full
    assert room.take_diff() is None, "nothing changed since"
    room.set_tab("p1:2", tab(b, 1))
    assert room.take_diff() is None, "the same state again is no change"
    room.set_tab("p2:1", tab(a, 2))
    room.set_tab("p1:2", None)
    diff = room.take_diff()
    assert diff is not None and [u.user_id for u in diff.users] == [a] and diff.left == [b]
    assert diff.users[0].tabs == 2
    full = room.full()
    assert full.full and [u.user_id for u in full.users] == [a]


def test_a_read_from_redis_never_undoes_a_newer_change() -> None:
    """What the room learnt after a read began beats the read, both sets and leaves."""
    room = Room(PROJECT, "ch")
    a, b, c = uuid4(), uuid4(), uuid4()
    room.set_tab("p2:1", tab(a, 1))
    started = room.version
    # meanwhile: b joins, a leaves (messages that overtook the read's answer)
    room.set_tab("p2:2", tab(b, 2))
    room.set_tab("p2:1", None)
    # the read saw a (before it left), not b (before it came), and c
    room.merge_read({"p2:1": tab(a, 1), "p3:1": tab(c, 1), "me:1": tab(c, 9)}, started, "me")
    assert set(room.tabs) == {"p2:2", "p3:1"}, "a stays gone, b stays, c is learnt; ours ignored"


def test_a_dead_process_takes_its_tabs_along() -> None:
    """drop_procs forgets every tab of those processes and marks their users."""
    room = Room(PROJECT, "ch")
    a, b = uuid4(), uuid4()
    room.set_tab("dead:1", tab(a, 1))
    room.set_tab("dead:2", tab(b, 1))
    room.set_tab("live:1", tab(b, 1))
    room.take_diff()
    assert sorted(room.drop_procs({"dead"})) == ["dead:1", "dead:2"]
    diff = room.take_diff()
    assert diff is not None and diff.left == [a] and [u.tabs for u in diff.users] == [1]


# -- membership -------------------------------------------------------------------


def member(user: UUID, role: protocol.Role) -> protocol.Member:
    """A member struct."""
    return protocol.Member(user_id=user, email="m@example.com", role=role, added_at=NOW)


def test_role_changes_of_each_membership_event() -> None:
    """Added and updated members carry their role, a removed one None; other kinds nothing."""
    u, v = uuid4(), uuid4()
    by = uuid4()
    assert role_changes(protocol.MemberUpdated(member=member(u, protocol.Role.VIEWER), by=by)) == {
        u: protocol.Role.VIEWER
    }
    assert role_changes(protocol.MemberRemoved(user_id=u, by=by)) == {u: None}
    project = protocol.Project(
        id=PROJECT, owner_id=v, name="p", seq=1, created_at=NOW, updated_at=NOW
    )
    transferred = protocol.ProjectTransferred(
        project=project,
        owner=member(v, protocol.Role.OWNER),
        previous_owner=member(u, protocol.Role.EDITOR),
        by=u,
    )
    assert role_changes(transferred) == {v: protocol.Role.OWNER, u: protocol.Role.EDITOR}
    assert role_changes(protocol.NodeDeleted(node_id=u, connection_ids=[])) is None
    assert role_changes(msgspec.Raw(b"{}")) is None


def test_a_subscription_sends_nothing_after_the_event_that_removed_its_user() -> None:
    """Buffered or live, the removal is the last frame; a demotion only changes the role."""
    user = uuid4()
    peer = Peer(user, Outbox(100))
    sub = Subscription(peer, PROJECT)
    sub.role = protocol.Role.EDITOR
    sub.seq = 0
    sub.deliver(1, b"e1", {user: protocol.Role.VIEWER})
    sub.deliver(2, b"e2", {uuid4(): None})  # someone else's removal
    sub.deliver(3, b"e3", {user: None})
    sub.deliver(4, b"e4")
    assert sub.go_live()
    assert list(peer.outbox.frames) == [b"e1", b"e2", b"e3"]
    assert sub.revoked and sub.role == protocol.Role.VIEWER
    assert sub.deliver(5, b"e5") and list(peer.outbox.frames)[-1] == b"e3"


def test_the_mirror_keeps_a_subscription_after_forbidden_role_and_ends_it_on_revocation() -> None:
    """forbidden_role refused one frame; access_revoked ends the project; presence is kept."""
    mirror = Mirror(rand=lambda: 0.5)
    mirror.subscribe(PROJECT, presence=True)
    assert mirror.projects[PROJECT].subscribe_frame().presence
    mirror.receive(protocol.Snapshot(project_id=PROJECT, seq=1, nodes=[], connections=[], jobs=[]))
    state = mirror.projects[PROJECT]
    u = uuid4()
    user = protocol.PresenceUser(user_id=u, email="u@example.com", color="#000", tabs=1)
    mirror.receive(PresenceUpdate(project_id=PROJECT, users=[user], full=True))
    assert list(state.presence) == [u]
    mirror.receive(protocol.Error(code="forbidden_role", message="no", project_id=PROJECT))
    assert not state.ended
    mirror.receive(PresenceUpdate(project_id=PROJECT, users=[], left=[u]))
    assert state.presence == {}
    mirror.receive(protocol.Error(code="access_revoked", message="gone", project_id=PROJECT))
    assert state.ended and mirror.resume() == []


# -- a PresenceHub on the test run's Redis ------------------------------------------


@pytest.fixture
async def presence(services: Services, store: Store) -> AsyncIterator[PresenceHub]:
    """A started PresenceHub with a slow flush, so a test can act between two flushes."""
    hub = PresenceHub(
        store.redis,
        services.redis_url,
        services.namespace,
        HubConfig(presence_flush_s=0.3, presence_heartbeat_s=0.2),
    )
    hub.start()
    await asyncio.wait_for(hub.bus.ready.wait(), 10)
    try:
        yield hub
    finally:
        await hub.stop()


class WatchedOutbox(Outbox):
    """An Outbox that says when it dropped a frame."""

    def __init__(self, max_frames: int) -> None:
        super().__init__(max_frames)
        self.dropped_one = asyncio.Event()

    def offer(self, frame: bytes, droppable: bool = False) -> bool:
        """Offer, and note a drop."""
        taken = super().offer(frame, droppable)
        if not taken and droppable:
            self.dropped_one.set()
        return taken


def joined_sub(role: protocol.Role, max_frames: int = 100) -> Subscription:
    """A live subscription with presence, of a new user."""
    peer = Peer(uuid4(), WatchedOutbox(max_frames), email="x@example.com")
    sub = Subscription(peer, PROJECT, presence=True)
    sub.role, sub.live = role, True
    peer.subscriptions[PROJECT] = sub
    return sub


async def next_presence(sub: Subscription, timeout_s: float = 5) -> PresenceUpdate:
    """The next frame queued for `sub`, which must be a presence frame."""
    frame = await asyncio.wait_for(sub.peer.outbox.next(), timeout_s)
    assert frame is not None
    message = protocol.decode_server(payload_of(frame))
    assert isinstance(message, PresenceUpdate), message
    return message


async def test_updates_between_two_flushes_make_one_frame(presence: PresenceHub) -> None:
    """A hundred cursor moves in one go reach the others as one frame with the last position."""
    watcher, mover = joined_sub(protocol.Role.VIEWER), joined_sub(protocol.Role.EDITOR)
    await presence.join(watcher)
    await next_presence(watcher)  # its full list
    await presence.join(mover)
    await next_presence(watcher)  # the mover arrived
    await next_presence(mover)
    live = presence.rooms[PROJECT]
    for i in range(100):
        presence.update(mover.peer, protocol.Presence(project_id=PROJECT, cursor=Cursor(x=i, y=0)))
    # a flush is due, and not before the interval since the last one
    assert live.flush is not None
    assert live.flush.when() >= live.last_flush + presence.config.presence_flush_s - 1e-6
    frame = await next_presence(watcher)
    assert [u.cursor for u in frame.users] == [Cursor(x=99, y=0)]
    assert not watcher.peer.outbox.frames


async def test_a_client_that_lost_a_diff_gets_the_full_list(presence: PresenceHub) -> None:
    """Under backpressure the diff is dropped first; the next flush sends that client everyone."""
    busy = joined_sub(protocol.Role.VIEWER, max_frames=4)
    mover = joined_sub(protocol.Role.EDITOR)
    await presence.join(busy)
    await next_presence(busy)
    await presence.join(mover)
    await next_presence(busy)
    # the busy client's queue is half full of events it has not read
    assert busy.peer.outbox.offer(b"e1") and busy.peer.outbox.offer(b"e2")
    presence.update(mover.peer, protocol.Presence(project_id=PROJECT, cursor=Cursor(x=5, y=5)))
    outbox = busy.peer.outbox
    assert isinstance(outbox, WatchedOutbox)
    await asyncio.wait_for(outbox.dropped_one.wait(), 5)
    assert busy in presence.rooms[PROJECT].stale and list(outbox.frames) == [b"e1", b"e2"]
    # it reads its events; the full list follows at the next flush, and nothing was lost
    assert busy.peer.outbox.take() == b"e1" and busy.peer.outbox.take() == b"e2"
    full = await next_presence(busy)
    assert full.full and {u.user_id: u.cursor for u in full.users}[mover.peer.user_id] == Cursor(
        x=5, y=5
    )


async def test_a_viewer_may_not_mark_a_node_as_being_edited(presence: PresenceHub) -> None:
    """editing from a viewer is an error frame and changes nothing; cursor and selection are fine."""
    viewer = joined_sub(protocol.Role.VIEWER)
    await presence.join(viewer)
    await next_presence(viewer)
    presence.update(viewer.peer, protocol.Presence(project_id=PROJECT, editing=uuid4()))
    frame = protocol.decode_server(payload_of((await viewer.peer.outbox.next()) or b"\x81\x00"))
    assert isinstance(frame, protocol.Error) and frame.code == "forbidden_role"
    assert presence.local[viewer].state.editing is None
    # a demotion clears a marker that was allowed before
    editor = joined_sub(protocol.Role.EDITOR)
    await presence.join(editor)
    node = uuid4()
    presence.update(editor.peer, protocol.Presence(project_id=PROJECT, editing=node))
    assert presence.local[editor].state.editing == node
    editor.role = protocol.Role.VIEWER
    presence.sync_role(editor)
    assert presence.local[editor].state.editing is None
