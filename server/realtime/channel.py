"""Routing: one project's stream in this process, from the bus to every local subscriber.

A channel is opened on a project's first local subscriber and closed on its
last. Its worker task handles an inbox — payloads from Redis and commands
from the hub — in order, so ordering needs no locks. The worker runs only
while there is something to do (items, or a gap waiting for its grace): an
idle channel holds no task and no queue, and the next item starts one: the sequencer puts
events in seq order, gaps are filled from the Postgres log after a short
grace, and each deliverable event is presented (URLs signed) and encoded
ONCE, the same frame then queued to every subscriber's outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import msgspec

from common import metrics
from common.protocol import frames
from common.protocol.events import PROGRESS_TYPE, AnyEvent, JobProgress, ProjectDeleted, decode_bus
from common.protocol.frames import ErrorCode
from db.events import events_after
from db.projects import current_seq
from server.realtime.flag import Flag
from server.realtime.framing import encode_frame, frame_text
from server.realtime.membership import role_changes
from server.realtime.ordering import Sequencer
from server.realtime.subscription import Subscription

if TYPE_CHECKING:
    from server.realtime.hub import Hub

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Start:
    """The baseline seq of a freshly opened channel."""

    seq: int


@dataclass(frozen=True)
class FillTo:
    """The project is at `seq` in Postgres: fill from the log up to it."""

    seq: int


@dataclass(frozen=True)
class Resync:
    """Redis (re)confirmed the channel after its baseline: read the seq, then fill."""


@dataclass(frozen=True)
class Gone:
    """The project no longer exists."""


Item = bytes | Start | FillTo | Resync | Gone


class Channel:
    """One project's stream in this process: its order, its subscribers, its worker."""

    # one per followed project, most of them idle: no instance dict, Flags not Events
    __slots__ = (
        "closed",
        "confirmed",
        "gap_since",
        "hub",
        "inbox",
        "name",
        "opening",
        "project_id",
        "retry_at",
        "sequencer",
        "started",
        "subscribers",
        "wake",
        "worker",
    )

    def __init__(self, hub: Hub, project_id: UUID, name: str) -> None:
        self.hub = hub
        self.project_id = project_id
        self.name = name
        self.sequencer = Sequencer(hub.config.max_held_events)
        self.subscribers: set[Subscription] = set()
        #: what the worker has still to handle; None while the channel is idle
        self.inbox: deque[Item] | None = None
        self.wake = Flag()
        #: Redis confirmed the SUBSCRIBE on the current pub/sub connection
        self.confirmed = Flag()
        #: the baseline is set: the channel delivers every seq after it
        self.started = Flag()
        self.closed = False
        #: handles the inbox; None while there is nothing to handle
        self.worker: asyncio.Task[None] | None = None
        self.opening: asyncio.Task[None] | None = None
        #: when the current gap was first seen, and when a failed fill may retry
        self.gap_since: float | None = None
        self.retry_at = 0.0

    def push(self, item: Item) -> None:
        """Hand the worker an item (a Redis payload or a command), starting it if idle."""
        inbox = self.inbox
        if inbox is None:
            inbox = self.inbox = deque()
        inbox.append(item)
        worker = self.worker
        if worker is None or worker.done():
            if not self.closed:
                # a task a project only while it has work: 1,000 idle tabs on their own
                # projects held ~1 KB each in idle workers (tracemalloc, 2026-12-02)
                self.worker = self.hub.spawn(self.run(), name=f"hub-channel-{self.name}")
        else:
            self.wake.set()

    async def _db(self, call: Awaitable[T]) -> T:
        return await self.hub.db(call)

    # -- the worker

    async def run(self) -> None:
        """The channel's worker: handles its inbox in order, and fills gaps when due; ends
        when nothing is left to do (no await between that check and its end)."""
        loop = asyncio.get_running_loop()
        grace_s = self.hub.config.gap_grace_s
        while True:
            while self.inbox and not self.closed:
                item = self.inbox.popleft()
                try:
                    await self._handle(item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("hub channel %s failed on an item", self.name)
            if self.closed:
                return
            self.wake.clear()
            missing = self.sequencer.missing()
            if missing is None:
                self.gap_since = None
                self.inbox = None
                self.worker = None
                return
            if self.gap_since is None:
                self.gap_since = loop.time()
            wait_s = max(self.gap_since + grace_s, self.retry_at) - loop.time()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait_s)
                continue
            # the missing events did not come through Redis in time: read them
            self.gap_since = None
            await self.fill(*missing)

    async def _handle(self, item: Item) -> None:
        """One inbox item: a Redis payload, the baseline, or a fill / resync / gone command."""
        if isinstance(item, bytes):
            await self._on_payload(item)
        elif isinstance(item, Start):
            released = self.sequencer.start(item.seq)
            self.started.set()
            await self.deliver(released)
        elif isinstance(item, FillTo):
            last = self.sequencer.last_seq
            if last is not None and item.seq > last:
                await self.fill(last, item.seq)
        elif isinstance(item, Resync):
            seq = await self._db(current_seq(self.hub.store.db, self.project_id))
            last = self.sequencer.last_seq
            if seq is None:
                self.project_gone()
            elif last is not None and seq > last:
                await self.fill(last, seq)
        else:
            self.project_gone()

    async def _on_payload(self, payload: bytes) -> None:
        """One message from Redis: a progress tick goes straight out, an event through order."""
        try:
            decoded = decode_bus(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable message on %s: %s", self.name, exc)
            return
        if isinstance(decoded, JobProgress):
            self._fan_out_progress(payload, decoded)
        elif isinstance(decoded.data, ProjectDeleted):
            await self._project_deleted(decoded)
        else:
            await self.deliver(self.sequencer.push(decoded))

    async def fill(self, after: int, until: int) -> None:
        """Read seqs `after+1..until` from the log and deliver them (and what they release)."""
        try:
            events = await self._db(events_after(self.hub.store.db, self.project_id, after, until))
        except Exception as exc:
            # Postgres is away: keep what we hold; retry in a second, or at the next sweep
            log.warning("gap fill of %s failed: %r", self.name, exc)
            self.retry_at = asyncio.get_running_loop().time() + 1.0
            return
        metrics.WS_GAP_FILLS.inc(len(events))
        for event in events:
            await self.deliver(self.sequencer.push(event))
        last = self.sequencer.last_seq
        if last is not None and last < until:
            # the log no longer holds them (pruned): nobody can replay them, so every
            # subscriber catches up from a snapshot, and the channel moves on
            log.warning("%s: seqs %d..%d are not in the log; resyncing", self.name, last + 1, until)
            released = self.sequencer.skip_to(until)
            for sub in list(self.subscribers):
                self.hub.resync(self, sub, "log_gap")
            await self.deliver(released)

    # -- delivery

    async def deliver(self, events: list[AnyEvent]) -> None:
        """Present and encode each event once, then queue the same frame to every subscriber.

        A membership event changes its users' roles as it is sent; a subscription whose
        user it removed ends right after it.
        """
        for event in events:
            frame = await self.encode_event(event)
            changes = role_changes(event.data)
            delivered = 0
            for sub in list(self.subscribers):
                if not sub.deliver(event.seq, frame, changes):
                    self.hub.resync(self, sub, "gap")
                elif sub.live:
                    delivered += 1
                if changes is not None and sub.peer.user_id in changes:
                    self.hub.role_changed(sub)
            metrics.WS_FRAMES_DELIVERED.labels("event").inc(delivered)

    async def encode_event(self, event: AnyEvent) -> bytes:
        """An `event` frame (wire bytes), its URLs signed now."""
        try:
            event = await self.hub.presenter.event(event)
        except Exception:
            # an event whose data cannot be presented still carries its seq: send it as is
            log.exception("presenting %s event %d failed", event.kind, event.seq)
        return encode_frame(event)

    def _fan_out_progress(self, payload: bytes, tick: JobProgress) -> None:
        """A progress tick to every live subscriber; droppable, so never a reason to close."""
        # the bus carries ticks in their wire shape: forward the bytes as they came
        frame = frame_text(payload)
        delivered = 0
        for sub in self.subscribers:
            if sub.live and sub.peer.outbox.offer(frame, droppable=True):
                delivered += 1
        metrics.WS_FRAMES_DELIVERED.labels(PROGRESS_TYPE).inc(delivered)

    async def _project_deleted(self, event: AnyEvent) -> None:
        """The last event of a project: deliver what is held, then it, then end the channel."""
        last = self.sequencer.last_seq
        if last is not None and event.seq <= last:
            return
        # its log went with it: what is held goes out as is, gaps and all
        await self.deliver(self.sequencer.drain())
        frame = await self.encode_event(event)
        for sub in list(self.subscribers):
            if sub.live:
                sub.peer.outbox.offer(frame)
            self.hub.end(sub)
            sub.peer.send(frames.Unsubscribed(project_id=self.project_id))
        self.hub.close_channel(self)

    def project_gone(self) -> None:
        """The project vanished without its deleted event reaching us: tell and end."""
        for sub in list(self.subscribers):
            self.hub.end(sub)
            sub.peer.client_error(
                ErrorCode.PROJECT_NOT_FOUND,
                "The project was deleted.",
                self.project_id,
                count=False,
            )
        self.hub.close_channel(self)
