"""Presence: who has a project open, where their cursor is, what they selected and edit.

Ephemeral, like `job.progress`: no seq, never logged. Each subscription is a
tab; the hub tells this module when one has caught up (`join`) and when it
ends (`leave`), the endpoint hands over the tab's `presence` frames
(`update`). Per project a `Room` (presence_room.py) holds every tab of every
process, and:

- changes are coalesced: a project's presence goes out at most once per
  `presence_flush_s` (50 ms: ≤ 20 updates a second per user, and per client),
  as one diff frame for every local subscriber, offered as droppable (the
  outbox drops it first when a client falls behind); a subscriber that lost
  one gets a `full` frame at the next flush;
- across processes it rides Redis (presence_store.py): this process writes
  its tabs to the project's hash and publishes them on the project's presence
  channel, which it follows on a pub/sub connection of its own (the events'
  bus is left alone); a new room reads the hash, so a subscribe gets the
  current presence;
- a process renews an alive key every `presence_heartbeat_s`; every
  `presence_check_s` each process looks at the alive keys of the processes
  whose tabs it shows and drops the tabs of those whose key expired, so the
  users of a killed process leave everyone's presence within
  `presence_ttl_s + presence_check_s` (7 s by default; presence_liveness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from common import metrics
from common.protocol.frames import ErrorCode
from common.protocol.presence import Presence
from server.access import Action, Decision, decide, forbidden_message
from server.realtime.bus import Bus
from server.realtime.config import HubConfig
from server.realtime.framing import encode_frame
from server.realtime.presence_liveness import check_loop, heartbeat_loop
from server.realtime.presence_room import Room, TabState, proc_of
from server.realtime.presence_store import PresenceStore, decode_message
from server.realtime.subscription import Peer, Subscription

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalTab:
    """A subscription of this process, as presence sees it."""

    key: str
    state: TabState
    #: in its room (the client holds the project); before that, updates are only kept
    joined: bool = False


@dataclass(eq=False)
class LiveRoom:
    """A room and what this process does for it: local subscribers, writes, timers."""

    room: Room
    subs: dict[Subscription, str] = field(default_factory=dict)
    #: this process's tab changes not yet in Redis
    unsent: dict[str, TabState | None] = field(default_factory=dict)
    #: subscribers owed a `full` frame (just joined, or lost a diff)
    stale: set[Subscription] = field(default_factory=set)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    #: the pub/sub connection dropped since the channel was confirmed: read again
    lost: bool = False
    opening: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None
    flush: asyncio.TimerHandle | None = None
    last_flush: float = float("-inf")
    reading: bool = False
    closed: bool = False


class PresenceHub:
    """Every project's presence in this web process."""

    def __init__(self, redis: Redis, redis_url: str, namespace: str, config: HubConfig) -> None:
        self.config = config
        self.proc = secrets.token_hex(6)
        self.store = PresenceStore(
            redis, namespace, self.proc, config.presence_ttl_s, config.presence_hash_ttl_s
        )
        self.rooms: dict[UUID, LiveRoom] = {}
        self._by_name: dict[str, LiveRoom] = {}
        self.local: dict[Subscription, LocalTab] = {}
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        #: set once the alive key exists: tabs written before it would look dead
        self.alive = asyncio.Event()
        self.bus = Bus(
            redis_url,
            on_message=self._on_message,
            on_confirm=self._on_confirm,
            on_lost=self._on_lost,
            wanted=self._by_name.keys,
            is_wanted=self._by_name.__contains__,
            backoff_initial_s=config.redis_backoff_initial_s,
            backoff_max_s=config.redis_backoff_max_s,
        )

    # -- life cycle

    def start(self) -> None:
        """Open the presence bus and start the heartbeat and the liveness check."""
        self.bus.start()
        self._loops = [
            asyncio.create_task(heartbeat_loop(self), name="presence-heartbeat"),
            asyncio.create_task(check_loop(self), name="presence-check"),
        ]

    async def stop(self) -> None:
        """Write the last leaves (briefly), give up the alive key, close the bus."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for live in list(self.rooms.values()):
            for sub in list(live.subs):
                self.leave(sub)
            if live.flush is not None:
                live.flush.cancel()
                self._flush(live)
        writers = [lr.writer for lr in self.rooms.values() if lr.writer is not None]
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 1.0)
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(self.store.retire(), 1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task kept until it ends (and cancelled on stop)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what the hub and the endpoint tell us

    def update(self, peer: Peer, message: Presence) -> None:
        """A `presence` frame from a connection: change its tab in that project."""
        sub = peer.subscriptions.get(message.project_id)
        if sub is None or not sub.presence:
            peer.client_error(
                ErrorCode.NOT_SUBSCRIBED,
                "Subscribe to the project with presence: true before sending its presence.",
                message.project_id,
            )
            return
        marks = message.editing is not None and message.editing is not msgspec.UNSET
        if marks and not _may_edit(sub):
            text = "Only editors and the owner show an editing marker."
            if sub.role is not None:
                text = forbidden_message(sub.role, Action.EDIT)
            peer.client_error(ErrorCode.FORBIDDEN_ROLE, text, message.project_id)
            return
        changes: dict[str, Any] = {
            name: getattr(message, name)
            for name in ("cursor", "selection", "editing")
            if getattr(message, name) is not msgspec.UNSET
        }
        self._change(sub, changes)

    async def join(self, sub: Subscription) -> None:
        """The subscription holds the project now: it sees who is here, and they it."""
        tab = self._tab(sub)
        if tab.joined or sub.ended:
            return
        live = self.rooms.get(sub.project_id) or self._open(sub.project_id)
        live.subs[sub] = tab.key
        if live.opening is not None:
            await asyncio.shield(live.opening)
        if sub.ended or live.closed:
            return  # it left while the room was being read
        tab.joined = True
        if tab.state.editing is not None and not _may_edit(sub):
            tab.state = msgspec.structs.replace(tab.state, editing=None)
        self._put(live, tab)
        live.stale.add(sub)
        self.schedule(live)

    def leave(self, sub: Subscription) -> None:
        """The subscription ended: its tab goes at once."""
        tab = self.local.pop(sub, None)
        live = self.rooms.get(sub.project_id)
        if tab is None or live is None:
            return
        live.subs.pop(sub, None)
        live.stale.discard(sub)
        if tab.joined:
            live.room.set_tab(tab.key, None)
            live.unsent[tab.key] = None
            self.schedule(live)
        self._maybe_close(live)

    def sync_role(self, sub: Subscription) -> None:
        """The user's role changed: a viewer's editing marker goes."""
        tab = self.local.get(sub)
        if tab is not None and tab.state.editing is not None and not _may_edit(sub):
            self._change(sub, {"editing": None})

    # -- local changes

    def _tab(self, sub: Subscription) -> LocalTab:
        tab = self.local.get(sub)
        if tab is None:
            key = f"{self.proc}:{next(self._numbers)}"
            state = TabState(user_id=sub.peer.user_id, email=sub.peer.email, at=time.time())
            tab = self.local[sub] = LocalTab(key, state)
        return tab

    def _change(self, sub: Subscription, changes: dict[str, Any]) -> None:
        tab = self._tab(sub)
        tab.state = msgspec.structs.replace(tab.state, **changes, at=time.time())
        live = self.rooms.get(sub.project_id)
        if tab.joined and live is not None:
            self._put(live, tab)
            self.schedule(live)

    def _put(self, live: LiveRoom, tab: LocalTab) -> None:
        live.room.set_tab(tab.key, tab.state)
        live.unsent[tab.key] = tab.state

    # -- rooms

    def _open(self, project_id: UUID) -> LiveRoom:
        live = LiveRoom(Room(project_id, self.store.channel(project_id)))
        self.rooms[project_id] = live
        self._by_name[live.room.name] = live
        live.opening = asyncio.create_task(self._load(live))
        return live

    async def _load(self, live: LiveRoom) -> None:
        """Follow the room's channel, then read who is here (the order events use too)."""
        try:
            await self.bus.subscribe(live.room.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    live.confirmed.wait(), self.config.subscribe_confirm_timeout_s
                )
            await self.refresh(live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # presence is a courtesy: the subscription goes on, the next refresh heals it
            log.warning("presence of %s could not be read: %r", live.room.project_id, exc)
        finally:
            live.opening = None

    async def refresh(self, live: LiveRoom) -> None:
        """Read the room's hash again and reconcile (a new room, a reconnect, every 10 s)."""
        if live.reading or live.closed:
            return
        live.reading = True
        try:
            started = live.room.version
            read = await asyncio.wait_for(
                self.store.read(live.room.project_id), self.config.db_timeout_s
            )
            live.room.merge_read(read, started, self.proc)
            for sub, key in live.subs.items():
                tab = self.local.get(sub)
                if tab is not None and tab.joined and read.get(key) != tab.state:
                    live.unsent.setdefault(key, tab.state)  # Redis lost it: write it again
            self.schedule(live)
        finally:
            live.reading = False

    async def _refresh_quietly(self, live: LiveRoom) -> None:
        try:
            await self.refresh(live)
        except Exception as exc:
            log.warning("presence of %s could not be read: %r", live.room.project_id, exc)

    def _maybe_close(self, live: LiveRoom) -> None:
        """Close a room nobody here follows once its last writes are out."""
        busy = live.writer is not None and live.writer is not asyncio.current_task()
        if live.subs or live.unsent or busy or live.flush is not None or live.closed:
            return
        live.closed = True
        if self.rooms.get(live.room.project_id) is live:
            del self.rooms[live.room.project_id]
        if self._by_name.get(live.room.name) is live:
            del self._by_name[live.room.name]
        if live.opening is not None:
            live.opening.cancel()
        self.spawn(self.bus.unsubscribe(live.room.name))

    # -- frames out, writes out

    def schedule(self, live: LiveRoom) -> None:
        """Flush the room soon: at once, unless it flushed less than `presence_flush_s` ago."""
        if live.flush is not None or live.closed:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, live.last_flush + self.config.presence_flush_s - loop.time())
        live.flush = loop.call_later(delay, self._flush, live)

    def _flush(self, live: LiveRoom) -> None:
        """One coalesced frame for every local subscriber, `full` ones for the stale, then Redis."""
        live.flush = None
        live.last_flush = asyncio.get_running_loop().time()
        diff = live.room.take_diff()
        sent = 0
        if diff is not None:
            frame = encode_frame(diff)
            for sub in live.subs:
                if sub in live.stale:
                    continue
                if sub.peer.outbox.offer(frame, droppable=True):
                    sent += 1
                else:
                    live.stale.add(sub)  # it missed a diff: a full list follows
        if live.stale:
            full = encode_frame(live.room.full())
            for sub in list(live.stale):
                if sub.peer.outbox.offer(full, droppable=True):
                    live.stale.discard(sub)
                    sent += 1
            if live.stale and live.subs:
                self.schedule(live)  # still too busy: try again after the next interval
        metrics.WS_FRAMES_DELIVERED.labels("presence").inc(sent)
        if live.unsent and (live.writer is None or live.writer.done()):
            live.writer = self.spawn(self._write(live))
        self._maybe_close(live)

    async def _write(self, live: LiveRoom) -> None:
        """Write this process's changed tabs to Redis, in order; keep them on failure."""
        try:
            await self.alive.wait()
            while live.unsent:
                batch, live.unsent = live.unsent, {}
                try:
                    await asyncio.wait_for(
                        self.store.write(live.room.project_id, batch), self.config.db_timeout_s
                    )
                except Exception as exc:
                    log.warning("presence write of %s failed: %r", live.room.project_id, exc)
                    for key, state in batch.items():
                        live.unsent.setdefault(key, state)  # the heartbeat tries again
                    return
        finally:
            live.writer = None
            self._maybe_close(live)

    # -- the presence bus's callbacks

    def _on_message(self, name: str, payload: bytes) -> None:
        live = self._by_name.get(name)
        message = decode_message(payload)
        if live is None or message is None or message.proc == self.proc:
            return
        for key, state in message.tabs.items():
            if proc_of(key) == message.proc:  # a process speaks only for its own tabs
                live.room.set_tab(key, state)
        self.schedule(live)

    def _on_confirm(self, name: str) -> None:
        live = self._by_name.get(name)
        if live is None:
            return
        live.confirmed.set()
        if live.lost:
            # published while we were away is missed: read the hash again
            live.lost = False
            self.spawn(self._refresh_quietly(live))

    def _on_lost(self) -> None:
        for live in self.rooms.values():
            live.confirmed.clear()
            live.lost = True


def _may_edit(sub: Subscription) -> bool:
    return sub.role is not None and decide(sub.role, Action.EDIT) is Decision.ALLOWED
