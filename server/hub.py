"""The websocket hub: project events from Redis, in seq order, to every local subscriber.

One hub per web process holds ONE Redis pub/sub connection for all its
websockets. A `Channel` per followed project is subscribed in Redis when its
first local subscriber arrives and unsubscribed when the last one leaves (the
shape of encode/broadcaster's `Broadcast.subscribe`).

Ordering is the channel's job. Changes are published after commit, so two
concurrent changes can reach Redis out of order, and a publish can be lost.
Every seq'd change is also in the Postgres `events` log (db/changes.py), so a
channel keeps `last_seq`, drops duplicates, holds early events and fills any
gap from the log; a periodic sweep compares each channel with `projects.seq`
to catch a lost last publish. Each event is presented (URLs signed) and
encoded ONCE per process, and the same frame goes to every subscriber.

Backpressure: fan-out never awaits a client. Each connection has a bounded
`Outbox`: frames are written at once while the socket keeps up, and queue for a
writer task (server/ws.py) when it does not; a client whose outbox
overflows is closed with 4008 and resumes with `since`, and never slows the
others.

The plain parts (`Sequencer`, `Outbox`, `Subscription`, `Peer`) hold the
routing and ordering rules and are tested without sockets; `Hub` wires them to
Redis and Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from common import metrics
from common.keys import project_channel
from db.changes import Event, Progress, Store, decode_event
from db.events import events_after, read_snapshot
from db.projects import current_seq, get_owned_project
from db.sessions import live_sessions
from server import protocol
from server.present import Presenter
from server.protocol import CloseCode, ErrorCode

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class HubConfig:
    """The hub's knobs; the defaults suit production, tests shrink them."""

    #: frames a connection may have queued before it counts as a slow consumer
    send_queue_max: int = 256
    #: how often every channel's last_seq is compared with projects.seq
    sweep_interval_s: float = 5.0
    #: how long an early event waits for the missing ones to arrive from Redis
    #: before the gap is filled from Postgres (concurrent commits often publish
    #: out of order by a millisecond or so)
    gap_grace_s: float = 0.05
    #: a resume further behind than this gets a snapshot instead of a replay
    replay_max_events: int = 1000
    #: the longest a Postgres call of the hub may take
    db_timeout_s: float = 5.0
    #: the longest the hub waits for Redis to confirm a SUBSCRIBE
    subscribe_confirm_timeout_s: float = 2.0
    #: reconnect delays to Redis: doubling from the first to the cap, with jitter
    redis_backoff_initial_s: float = 0.1
    redis_backoff_max_s: float = 5.0
    #: subscriptions one connection may hold
    max_subscriptions: int = 100
    #: client frames: a token bucket of `message_burst` refilled at `messages_per_s`
    messages_per_s: float = 20.0
    message_burst: int = 40
    #: error frames a connection may provoke before it is closed with 4400
    max_errors: int = 20
    #: the largest client frame, in bytes
    max_message_bytes: int = protocol.MAX_MESSAGE_BYTES
    #: how long a close (and the queued frames before it) may take to get out
    close_timeout_s: float = 10.0
    #: early events a channel holds while it fills a gap; more are dropped and
    #: refilled from the log later
    max_held_events: int = 10_000


class HubError(Exception):
    """A subscription cannot be served; becomes an `error` frame for its project."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- the plain parts: ordering and backpressure -------------------------------


class Sequencer:
    """Puts one project's events in seq order: drops duplicates, holds early ones, names gaps.

    Until `start` gives it a baseline seq it only holds what it is pushed.
    Afterwards `push` returns the events that are now deliverable, consecutive
    from `last_seq + 1`; `missing` names the range a caller should read from
    the log when an early event is held.
    """

    def __init__(self, max_held: int = 10_000) -> None:
        self.last_seq: int | None = None
        self.held: dict[int, Event] = {}
        self.max_held = max_held

    def start(self, seq: int) -> list[Event]:
        """Set the baseline: everything up to `seq` is accounted for elsewhere."""
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        return self._release()

    def push(self, event: Event) -> list[Event]:
        """Take one event; returns the events now deliverable, in seq order."""
        if self.last_seq is not None and event.seq <= self.last_seq:
            return []  # a duplicate: Redis and the log (or two fills) both brought it
        if event.seq not in self.held:
            next_up = self.last_seq is not None and event.seq == self.last_seq + 1
            if len(self.held) >= self.max_held and not next_up:
                return []  # it is in the log; the gap fill will bring it back
            self.held[event.seq] = event
        return self._release()

    def missing(self) -> tuple[int, int] | None:
        """`(after, until)`: the seqs after `after` up to `until` are needed, or None."""
        if self.last_seq is None or not self.held:
            return None
        return self.last_seq, min(self.held) - 1

    def skip_to(self, seq: int) -> list[Event]:
        """Give up on everything up to `seq` (it is nowhere to be had) and release what follows."""
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        for stale in [s for s in self.held if s <= seq]:
            del self.held[stale]
        return self._release()

    def drain(self) -> list[Event]:
        """Every held event in seq order, gaps and all (the project is gone)."""
        out = [self.held[s] for s in sorted(self.held)]
        self.held.clear()
        if out:
            self.last_seq = out[-1].seq
        return out

    def _release(self) -> list[Event]:
        out: list[Event] = []
        if self.last_seq is None:
            return out
        for stale in [s for s in self.held if s <= self.last_seq]:
            del self.held[stale]
        while self.last_seq + 1 in self.held:
            self.last_seq += 1
            out.append(self.held.pop(self.last_seq))
        return out


class Outbox:
    """A connection's bounded queue of encoded frames.

    While the socket keeps up, `offer` hands each frame to the connection's `sink`,
    which writes it at once; once a write has to wait, frames queue here and the
    connection's writer task drains them in order. `offer` never waits: a full
    queue means the client cannot keep up, and the outbox fails with
    SLOW_CONSUMER rather than grow or slow the fan-out down.
    Droppable frames (progress ticks) are dropped once the queue is half full.
    """

    # an outbox per connection, thousands of them: no instance dict, and the two asyncio
    # Events (a deque each, ~0.7 KB) are made only when something waits on them
    __slots__ = (
        "_failed",
        "_failed_event",
        "_offers",
        "_wake",
        "close_code",
        "close_reason",
        "draining",
        "dropped",
        "frames",
        "max_frames",
        "on_fail",
        "sink",
    )

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.frames: deque[str] = deque()
        #: the connection's send-without-waiting, tried when nothing is queued: True when
        #: it took the frame (no queue, no writer wake-up), False to queue it (None: queue)
        self.sink: Callable[[str], bool] | None = None
        self._failed = False
        self._failed_event: asyncio.Event | None = None
        #: called once on failure: the endpoint's cheap way to hear of it (no task)
        self.on_fail: Callable[[], None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        #: the close waits until the queued frames are out
        self.draining = False
        self.dropped = 0
        self._offers = 0
        self._wake: asyncio.Event | None = None

    @property
    def failed(self) -> asyncio.Event:
        """Set when the connection must close now (queued frames are dropped)."""
        if self._failed_event is None:
            self._failed_event = asyncio.Event()
            if self._failed:
                self._failed_event.set()
        return self._failed_event

    def _wake_writer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @property
    def open(self) -> bool:
        """Whether frames are still accepted."""
        return self.close_code is None

    def offer(self, frame: str, droppable: bool = False) -> bool:
        """Queue `frame`; False when it was not queued."""
        if self.close_code is not None:
            return False
        depth = len(self.frames)
        if droppable and depth >= self.max_frames // 2:
            self.dropped += 1
            return False
        if depth >= self.max_frames:
            metrics.WS_RESYNCS.labels("slow_consumer").inc()
            self.fail(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect with since")
            return False
        self._offers += 1
        if not self._offers & 15:
            # sampled: observing every frame of every client cost a fifth of the fan-out
            metrics.WS_SEND_QUEUE.observe(depth)
        if not depth and self.sink is not None and self.sink(frame):
            # written straight to the socket, as websockets' broadcast() does: waking a
            # writer task per frame and client cost about as much as the write itself
            return True
        self.frames.append(frame)
        self._wake_writer()
        return True

    def fail(self, code: int, reason: str) -> None:
        """Close now: drop what is queued (the client resyncs anyway)."""
        if self.close_code is not None and not self.draining:
            return
        self.close_code, self.close_reason, self.draining = code, reason, False
        self.frames.clear()
        self._failed = True
        if self._failed_event is not None:
            self._failed_event.set()
        self._wake_writer()
        if self.on_fail is not None:
            self.on_fail()

    def finish(self, code: int, reason: str) -> None:
        """Close once the frames queued so far are sent; accept no more."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason, self.draining = code, reason, True
        self._wake_writer()

    def take(self) -> str | None:
        """The next frame to send, or None when there is none now."""
        if self.close_code is not None and not self.draining:
            return None
        return self.frames.popleft() if self.frames else None

    @property
    def done(self) -> bool:
        """Whether the writer has nothing more to send, ever."""
        return self.close_code is not None and (not self.draining or not self.frames)

    async def next(self) -> str | None:
        """Wait for the next frame; None once the outbox is closed (and drained)."""
        while True:
            frame = self.take()
            if frame is not None:
                return frame
            if self.done:
                return None
            if self._wake is None:
                self._wake = asyncio.Event()
            self._wake.clear()
            await self._wake.wait()


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

    def send(self, message: protocol.ServerMessage) -> bool:
        """Encode and queue one frame for this connection only."""
        return self.outbox.offer(protocol.encode(message))

    def client_error(
        self, code: ErrorCode, message: str, project_id: UUID | None = None, count: bool = True
    ) -> None:
        """Send an `error` frame; too many of them close the connection with 4400."""
        self.send(protocol.Error(code=code.value, message=message, project_id=project_id))
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


# -- the channel and its inbox items ------------------------------------------


@dataclass(frozen=True)
class _Start:
    """The baseline seq of a freshly opened channel."""

    seq: int


@dataclass(frozen=True)
class _FillTo:
    """The project is at `seq` in Postgres: fill from the log up to it."""

    seq: int


@dataclass(frozen=True)
class _Resync:
    """Redis (re)confirmed the channel after its baseline: read the seq, then fill."""


@dataclass(frozen=True)
class _Gone:
    """The project no longer exists."""


_Item = bytes | _Start | _FillTo | _Resync | _Gone


class Channel:
    """One project's stream in this process: its Redis subscription, order and subscribers."""

    def __init__(self, project_id: UUID, name: str, max_held: int) -> None:
        self.project_id = project_id
        self.name = name
        self.sequencer = Sequencer(max_held)
        self.subscribers: set[Subscription] = set()
        self.inbox: deque[_Item] = deque()
        self.wake = asyncio.Event()
        #: Redis confirmed the SUBSCRIBE on the current pub/sub connection
        self.confirmed = asyncio.Event()
        #: the baseline is set: the channel delivers every seq after it
        self.started = asyncio.Event()
        self.closed = False
        self.worker: asyncio.Task[None] | None = None
        self.opening: asyncio.Task[None] | None = None
        #: when the current gap was first seen, and when a failed fill may retry
        self.gap_since: float | None = None
        self.retry_at = 0.0

    def push(self, item: _Item) -> None:
        """Hand the worker an item (a Redis payload or a command)."""
        self.inbox.append(item)
        self.wake.set()


# -- the hub -------------------------------------------------------------------


class Hub:
    """Routes project events from one Redis pub/sub connection to this process's websockets."""

    def __init__(
        self,
        store: Store,
        presenter: Presenter,
        redis_url: str,
        config: HubConfig | None = None,
    ) -> None:
        self.store = store
        self.presenter = presenter
        self.redis_url = redis_url
        self.config = config or HubConfig()
        self.channels: dict[UUID, Channel] = {}
        self.peers: set[Peer] = set()
        self.closing = False
        self._by_name: dict[str, Channel] = {}
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        #: SUBSCRIBE / UNSUBSCRIBE go out in the order they were decided
        self._redis_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._previous_handlers: dict[int, Any] = {}
        #: set once the listener holds a live pub/sub connection (tests wait on it)
        self.redis_ready = asyncio.Event()
        self._no_peers = asyncio.Event()
        self._no_peers.set()

    # -- life cycle

    async def start(self) -> None:
        """Open the pub/sub connection (in the background) and start the sweep."""
        # a connection of its own: pub/sub takes a connection over for good
        # keepalive finds a half-open TCP peer; unix sockets take no such option
        tcp = not self.redis_url.startswith("unix:")
        self._redis = Redis.from_url(self.redis_url, **({"socket_keepalive": True} if tcp else {}))
        self._listener = asyncio.create_task(self._listen(), name="hub-listener")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="hub-sweeper")
        self._install_signal_handlers()

    async def stop(self) -> None:
        """Tell every client we are going away, then drop channels and Redis."""
        self.closing = True
        self._restore_signal_handlers()
        # 1. clients first: each connection closes with 1001 and reconnects elsewhere
        self.going_away()
        # 2. the background tasks: listener, sweep, channel workers and openers
        tasks: list[asyncio.Task[Any]] = [t for t in (self._listener, self._sweeper) if t]
        for ch in list(self.channels.values()):
            tasks += [t for t in (ch.worker, ch.opening) if t]
            self._close_channel(ch, unsubscribe=False)
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # 3. Redis last
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._redis is not None:
            await self._redis.aclose()

    def going_away(self) -> None:
        """Close every connection with 1001: the process is stopping."""
        self.closing = True
        for peer in list(self.peers):
            peer.outbox.fail(CloseCode.GOING_AWAY, "server shutting down")

    def _install_signal_handlers(self) -> None:
        # uvicorn answers SIGTERM by closing websockets with 1012 from under the app;
        # closing them ourselves first gives clients the 1001 the protocol promises.
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            # only wrap a server's own handler (uvicorn's), never Python's defaults
            if not callable(previous) or previous is signal.default_int_handler:
                continue
            self._previous_handlers[sig] = previous

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self._spawn, self._go_away_then(previous, signum))

            signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers.clear()

    async def _go_away_then(self, previous: Callable[[int, Any], Any], signum: int) -> None:
        """Send 1001 to every client, give the frames a moment, then let the server stop."""
        if not self.closing:
            self.going_away()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_peers.wait(), 1.0)
        previous(signum, None)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task the hub keeps a reference to until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections

    def add_peer(self, peer: Peer) -> None:
        """Register a new connection."""
        self.peers.add(peer)
        self._no_peers.clear()
        metrics.WS_CONNECTIONS.inc()

    def remove_peer(self, peer: Peer) -> None:
        """Forget a connection and everything it followed."""
        for sub in list(peer.subscriptions.values()):
            self._end(sub)
        if peer in self.peers:
            self.peers.discard(peer)
            metrics.WS_CONNECTIONS.dec()
        if not self.peers:
            self._no_peers.set()

    def subscribe(self, peer: Peer, project_id: UUID, since: int | None) -> None:
        """Start (or restart) following a project; answers arrive on the peer's outbox."""
        old = peer.subscriptions.get(project_id)
        if old is not None:
            # a resubscribe (e.g. after the client saw a gap) replaces the subscription
            self._end(old)
        elif len(peer.subscriptions) >= self.config.max_subscriptions:
            peer.client_error(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"At most {self.config.max_subscriptions} subscriptions per connection; "
                "unsubscribe from one first.",
                project_id,
            )
            return
        sub = Subscription(peer, project_id)
        peer.subscriptions[project_id] = sub
        metrics.WS_SUBSCRIPTIONS.inc()
        sub.task = asyncio.create_task(self._run_subscribe(sub, since))

    def unsubscribe(self, peer: Peer, project_id: UUID) -> None:
        """Stop following a project (idempotent); answered with `unsubscribed`."""
        sub = peer.subscriptions.get(project_id)
        if sub is not None:
            self._end(sub)
        peer.send(protocol.Unsubscribed(project_id=project_id))

    async def _run_subscribe(self, sub: Subscription, since: int | None) -> None:
        """The task behind one subscribe frame: errors become `error` frames."""
        try:
            await self._subscribe(sub, since)
        except HubError as exc:
            self._end(sub)
            sub.peer.client_error(
                exc.code, exc.message, sub.project_id, count=exc.code != ErrorCode.UNAVAILABLE
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("subscribe to %s failed: %r", sub.project_id, exc)
            self._end(sub)
            sub.peer.client_error(
                ErrorCode.UNAVAILABLE,
                "The server cannot reach its database; subscribe again in a moment.",
                sub.project_id,
                count=False,
            )
        finally:
            # a finished task kept on an idle subscription is memory held for nothing
            if sub.task is asyncio.current_task():
                sub.task = None

    async def _subscribe(self, sub: Subscription, since: int | None) -> None:
        """Subscribe-before-snapshot: join the channel, then read the state, then go live."""
        project_id = sub.project_id
        # 1. Only the owner may follow a project; someone else's looks like a missing one.
        owned = await self._db(get_owned_project(self.store.db, project_id, sub.peer.user_id))
        if owned is None:
            raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
        # 2. Join the channel BEFORE reading anything: from here on every event the
        #    channel delivers lands in this subscription's buffer. On the first local
        #    subscriber the channel SUBSCRIBEs in Redis and reads its baseline seq
        #    first (Channel opening), so the channel delivers every seq after it.
        ch = self._channel_for(project_id)
        ch.subscribers.add(sub)
        assert ch.opening is not None
        await asyncio.shield(ch.opening)
        # 3. Read the state (snapshot, or the seq and a replay for `since`) and send it.
        #    Whatever the channel delivered before we joined has a seq this read sees.
        await self._catch_up(ch, sub, since)

    async def _catch_up(self, ch: Channel, sub: Subscription, since: int | None) -> None:
        """Send the client its state (snapshot, `subscribed`, or a replay), then go live."""
        peer = sub.peer
        sent = False
        if since is not None:
            # The channel's position will do as the state's seq: every seq up to it is
            # committed and logged, and every later one reaches this subscription through
            # the channel. It saves a query per resume, a storm's worth after a restart.
            seq = ch.sequencer.last_seq
            if seq is None or since > seq:
                # the client may be further along than this process (it resumes from
                # another one): Postgres decides
                seq = await self._db(current_seq(self.store.db, ch.project_id))
            if seq is None:
                raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
            if since == seq:
                # 3a. the client is current: no snapshot, just the confirmation
                peer.send(protocol.Subscribed(project_id=ch.project_id, seq=seq))
                sub.seq, sent = seq, True
            elif since < seq:
                # 3b. the client missed a few: replay them from the log if it reaches back
                replay = await self._replay(ch.project_id, since, seq)
                if replay is not None:
                    peer.send(protocol.Subscribed(project_id=ch.project_id, seq=since))
                    for event in replay:
                        peer.outbox.offer(await self._encode_event(event))
                    sub.seq, sent = seq, True
            # 3c. since > seq (the client is ahead, e.g. after a restore): a snapshot
        if not sent:
            snapshot = await self._snapshot_frame(ch.project_id)
            if snapshot is None:
                raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
            seq, frame = snapshot
            peer.outbox.offer(frame)
            metrics.WS_FRAMES_DELIVERED.labels("snapshot").inc()
            sub.seq = seq
        # 4. Then the buffered events with a greater seq, and live from here on.
        if not sub.go_live():
            self._resync(ch, sub, "gap")

    async def _replay(self, project_id: UUID, since: int, seq: int) -> list[Event] | None:
        """The logged events after `since` up to `seq`, or None unless all of them are there."""
        if seq - since > self.config.replay_max_events:
            return None
        events = await self._db(events_after(self.store.db, project_id, since, seq))
        if [e.seq for e in events] != list(range(since + 1, seq + 1)):
            return None  # pruned from the log: the client gets a snapshot
        return events

    async def _snapshot_frame(self, project_id: UUID) -> tuple[int, str] | None:
        """The project's snapshot, URLs signed now, encoded; None if it is gone."""
        snap = await self._db(read_snapshot(self.store.db, project_id))
        if snap is None:
            return None
        present = self.presenter
        message = protocol.Snapshot(
            project_id=project_id,
            seq=snap.seq,
            nodes=[await present.node(n) for n in snap.nodes],
            connections=[msgspec.to_builtins(c) for c in snap.connections],
            jobs=[msgspec.to_builtins(await present.job(j)) for j in snap.jobs],
        )
        return snap.seq, protocol.encode(message)

    def _resync(self, ch: Channel, sub: Subscription, reason: str) -> None:
        """Bring one subscription back in step: buffer again and catch up from its seq."""
        if sub.ended or not sub.live:
            return  # a catch-up is running already and its buffer holds what came
        metrics.WS_RESYNCS.labels(reason).inc()
        sub.live = False
        sub.buffer = []

        async def run() -> None:
            try:
                await self._catch_up(ch, sub, sub.seq)
            except asyncio.CancelledError:
                raise
            except HubError as exc:
                self._end(sub)
                sub.peer.client_error(exc.code, exc.message, sub.project_id, count=False)
            except Exception as exc:
                log.warning("resync of %s failed: %r", sub.project_id, exc)
                self._end(sub)
                sub.peer.client_error(
                    ErrorCode.UNAVAILABLE,
                    "The server lost track of this project; subscribe again with since.",
                    sub.project_id,
                    count=False,
                )

        sub.task = asyncio.create_task(run())

    def _end(self, sub: Subscription) -> None:
        """Detach a subscription from its channel and its connection (idempotent)."""
        if sub.ended:
            return
        sub.ended = True
        metrics.WS_SUBSCRIPTIONS.dec()
        if sub.peer.subscriptions.get(sub.project_id) is sub:
            del sub.peer.subscriptions[sub.project_id]
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
        ch = self.channels.get(sub.project_id)
        if ch is not None and sub in ch.subscribers:
            ch.subscribers.discard(sub)
            if not ch.subscribers:
                self._close_channel(ch)

    # -- channels

    def _channel_for(self, project_id: UUID) -> Channel:
        """The project's channel, opened on its first subscriber."""
        ch = self.channels.get(project_id)
        if ch is None:
            name = project_channel(self.store.namespace, project_id)
            ch = Channel(project_id, name, self.config.max_held_events)
            self.channels[project_id] = ch
            self._by_name[name] = ch
            metrics.WS_CHANNELS.set(len(self.channels))
            ch.worker = asyncio.create_task(self._run_channel(ch), name=f"hub-channel-{name}")
            ch.opening = asyncio.create_task(self._open_channel(ch))
            # joiners may all be gone by the time it fails: nobody else reads its error
            ch.opening.add_done_callback(_retrieve)
        return ch

    async def _open_channel(self, ch: Channel) -> None:
        """SUBSCRIBE in Redis, wait for the confirmation, then set the baseline seq."""
        try:
            # a. From Redis's confirmation on, every publish on the channel reaches us.
            await self._redis_subscribe(ch)
            try:
                await asyncio.wait_for(ch.confirmed.wait(), self.config.subscribe_confirm_timeout_s)
            except TimeoutError:
                # Redis is down or slow: carry on from Postgres. When the listener
                # (re)subscribes, a confirmation after the baseline triggers a resync
                # from the log, so nothing committed in between is lost.
                log.warning("Redis did not confirm %s; serving it from Postgres", ch.name)
            # b. The baseline: every change up to it is committed, and every later one
            #    reaches the channel through Redis or a gap fill.
            seq = await self._db(current_seq(self.store.db, ch.project_id))
            if seq is None:
                raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
            ch.push(_Start(seq))
            await ch.started.wait()
        except BaseException:
            self._close_channel(ch)
            raise

    def _close_channel(self, ch: Channel, unsubscribe: bool = True) -> None:
        """Forget a channel and UNSUBSCRIBE it in Redis (idempotent)."""
        if ch.closed:
            return
        ch.closed = True
        if self.channels.get(ch.project_id) is ch:
            del self.channels[ch.project_id]
        if self._by_name.get(ch.name) is ch:
            del self._by_name[ch.name]
        metrics.WS_CHANNELS.set(len(self.channels))
        current = asyncio.current_task()
        for task in (ch.worker, ch.opening):
            if task is not None and task is not current and not task.done():
                task.cancel()
        if unsubscribe:
            self._spawn(self._redis_unsubscribe(ch.name))

    async def _run_channel(self, ch: Channel) -> None:
        """The channel's worker: handles its inbox in order, and fills gaps when due."""
        loop = asyncio.get_running_loop()
        while True:
            while ch.inbox and not ch.closed:
                item = ch.inbox.popleft()
                try:
                    await self._handle(ch, item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("hub channel %s failed on an item", ch.name)
            if ch.closed:
                return
            ch.wake.clear()
            missing = ch.sequencer.missing()
            if missing is None:
                ch.gap_since = None
                await ch.wake.wait()
                continue
            if ch.gap_since is None:
                ch.gap_since = loop.time()
            due = max(ch.gap_since + self.config.gap_grace_s, ch.retry_at)
            wait_s = due - loop.time()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ch.wake.wait(), wait_s)
                continue
            # the missing events did not come through Redis in time: read them
            ch.gap_since = None
            await self._fill(ch, *missing)

    async def _handle(self, ch: Channel, item: _Item) -> None:
        """One inbox item: a Redis payload, the baseline, or a fill / resync / gone command."""
        if isinstance(item, bytes):
            await self._on_payload(ch, item)
        elif isinstance(item, _Start):
            released = ch.sequencer.start(item.seq)
            ch.started.set()
            await self._deliver(ch, released)
        elif isinstance(item, _FillTo):
            last = ch.sequencer.last_seq
            if last is not None and item.seq > last:
                await self._fill(ch, last, item.seq)
        elif isinstance(item, _Resync):
            seq = await self._db(current_seq(self.store.db, ch.project_id))
            last = ch.sequencer.last_seq
            if seq is None:
                self._project_gone(ch)
            elif last is not None and seq > last:
                await self._fill(ch, last, seq)
        elif isinstance(item, _Gone):
            self._project_gone(ch)

    async def _on_payload(self, ch: Channel, payload: bytes) -> None:
        """One message from Redis: a progress tick goes straight out, an event through order."""
        try:
            decoded = decode_event(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable message on %s: %s", ch.name, exc)
            return
        if isinstance(decoded, Progress):
            self._fan_out_progress(ch, decoded)
        elif decoded.kind == "project.deleted":
            await self._project_deleted(ch, decoded)
        else:
            await self._deliver(ch, ch.sequencer.push(decoded))

    async def _fill(self, ch: Channel, after: int, until: int) -> None:
        """Read seqs `after+1..until` from the log and deliver them (and what they release)."""
        try:
            events = await self._db(events_after(self.store.db, ch.project_id, after, until))
        except Exception as exc:
            # Postgres is away: keep what we hold; retry in a second, or at the next sweep
            log.warning("gap fill of %s failed: %r", ch.name, exc)
            ch.retry_at = asyncio.get_running_loop().time() + 1.0
            return
        metrics.WS_GAP_FILLS.inc(len(events))
        for event in events:
            await self._deliver(ch, ch.sequencer.push(event))
        last = ch.sequencer.last_seq
        if last is not None and last < until:
            # the log no longer holds them (pruned): nobody can replay them, so every
            # subscriber catches up from a snapshot, and the channel moves on
            log.warning("%s: seqs %d..%d are not in the log; resyncing", ch.name, last + 1, until)
            released = ch.sequencer.skip_to(until)
            for sub in list(ch.subscribers):
                self._resync(ch, sub, "log_gap")
            await self._deliver(ch, released)

    async def _deliver(self, ch: Channel, events: list[Event]) -> None:
        """Present and encode each event once, then queue the same frame to every subscriber."""
        for event in events:
            frame = await self._encode_event(event)
            delivered = 0
            for sub in list(ch.subscribers):
                if not sub.deliver(event.seq, frame):
                    self._resync(ch, sub, "gap")
                elif sub.live:
                    delivered += 1
            metrics.WS_FRAMES_DELIVERED.labels("event").inc(delivered)

    async def _encode_event(self, event: Event) -> str:
        """An `event` frame, its URLs signed now."""
        try:
            data = await self.presenter.event_data(event.data)
        except Exception:
            # an event whose data cannot be presented still carries its seq: send it as is
            log.exception("presenting %s event %d failed", event.kind, event.seq)
            data = event.data
        message = protocol.Event(
            project_id=event.project_id, seq=event.seq, kind=event.kind, data=data
        )
        return protocol.encode(message)

    def _fan_out_progress(self, ch: Channel, tick: Progress) -> None:
        """A progress tick to every live subscriber; droppable, so never a reason to close."""
        frame = protocol.encode(
            protocol.JobProgress(
                project_id=tick.project_id, job_id=tick.job_id, progress=tick.progress
            )
        )
        delivered = 0
        for sub in ch.subscribers:
            if sub.live and sub.peer.outbox.offer(frame, droppable=True):
                delivered += 1
        metrics.WS_FRAMES_DELIVERED.labels("job.progress").inc(delivered)

    async def _project_deleted(self, ch: Channel, event: Event) -> None:
        """The last event of a project: deliver what is held, then it, then end the channel."""
        last = ch.sequencer.last_seq
        if last is not None and event.seq <= last:
            return
        # its log went with it: what is held goes out as is, gaps and all
        await self._deliver(ch, ch.sequencer.drain())
        frame = await self._encode_event(event)
        for sub in list(ch.subscribers):
            if sub.live:
                sub.peer.outbox.offer(frame)
            self._end(sub)
            sub.peer.send(protocol.Unsubscribed(project_id=ch.project_id))
        self._close_channel(ch)

    def _project_gone(self, ch: Channel) -> None:
        """The project vanished without its deleted event reaching us: tell and end."""
        for sub in list(ch.subscribers):
            self._end(sub)
            sub.peer.client_error(
                ErrorCode.PROJECT_NOT_FOUND,
                "The project was deleted.",
                ch.project_id,
                count=False,
            )
        self._close_channel(ch)

    # -- Redis

    async def _redis_subscribe(self, ch: Channel) -> None:
        """SUBSCRIBE one channel on the current connection, if there is one."""
        async with self._redis_lock:
            pubsub = self._pubsub
            if pubsub is None or ch.closed:
                return  # the listener subscribes every channel when it (re)connects
            try:
                await pubsub.subscribe(ch.name)
            except Exception as exc:
                # the listener sees the broken connection too, and resubscribes all
                log.warning("SUBSCRIBE %s failed: %r", ch.name, exc)

    async def _redis_unsubscribe(self, name: str) -> None:
        """UNSUBSCRIBE a channel nobody here follows any more."""
        async with self._redis_lock:
            pubsub = self._pubsub
            if pubsub is None or name in self._by_name:
                return  # reopened meanwhile: keep it
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(name)

    async def _listen(self) -> None:
        """Hold the pub/sub connection: reconnect with backoff, resubscribe, route messages."""
        assert self._redis is not None
        delay = self.config.redis_backoff_initial_s
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                async with self._redis_lock:
                    self._pubsub = pubsub
                    names = list(self._by_name)
                    if names:
                        # each confirmation of a channel with a baseline triggers its
                        # resync from the log (see _route): what was published while
                        # we were away is filled from Postgres
                        await pubsub.subscribe(*names)
                self.redis_ready.set()
                delay = self.config.redis_backoff_initial_s
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._route(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub lost Redis (%r); reconnecting in %.2f s", exc, delay)
            finally:
                self.redis_ready.clear()
                if self._pubsub is pubsub:
                    self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            # confirmations on the next connection mean "resync" for started channels
            for ch in self.channels.values():
                ch.confirmed.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.config.redis_backoff_max_s)

    def _route(self, message: dict[str, Any]) -> None:
        """One pub/sub message to its channel's inbox; confirmations mark channels."""
        kind = message.get("type")
        raw_name = message.get("channel")
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        ch = self._by_name.get(name)
        if ch is None:
            return
        if kind == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                ch.push(data)
        elif kind == "subscribe":
            if ch.started.is_set() and not ch.confirmed.is_set():
                # subscribed again after the baseline (a reconnect, or a late confirm):
                # whatever was published meanwhile is only in the log
                ch.push(_Resync())
            ch.confirmed.set()

    # -- the safety net

    async def _sweep_loop(self) -> None:
        """Every sweep_interval_s, catch channels up with projects.seq."""
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("hub sweep failed: %r", exc)
            try:
                await self.check_sessions()
            except Exception as exc:
                log.warning("hub session check failed: %r", exc)

    async def check_sessions(self) -> None:
        """Close with 4401 every connection whose session was logged out or has expired.

        Polled rather than pushed: one query per sweep covers every web
        process, log outs and expiry alike, and needs no Redis.
        """
        sessions = {p.session for p in self.peers if p.session is not None}
        if not sessions:
            return
        live = await self._db(live_sessions(self.store.db, sessions))
        for peer in list(self.peers):
            # only sessions the query asked about: a peer that connected during the
            # await is not in `live` either, and its session is fine (it just authed)
            if peer.session in sessions and peer.session not in live:
                peer.outbox.fail(CloseCode.UNAUTHENTICATED, "session ended: log in again")

    async def sweep(self) -> None:
        """One query for every started channel; a channel behind Postgres fills from the log."""
        started = {pid: ch for pid, ch in self.channels.items() if ch.started.is_set()}
        if not started:
            return
        rows = await self._db(
            self.store.db.fetch_all(
                "SELECT id, seq FROM projects WHERE id = ANY(CAST(:ids AS uuid[]))",
                {"ids": list(started)},
            )
        )
        seqs = {row["id"]: int(row["seq"]) for row in rows}
        for project_id, ch in started.items():
            if ch.closed:
                continue
            seq = seqs.get(project_id)
            last = ch.sequencer.last_seq
            if seq is None:
                ch.push(_Gone())
            elif last is not None and seq > last:
                ch.push(_FillTo(seq))

    async def _db(self, call: Awaitable[T]) -> T:
        """A Postgres call bounded by db_timeout_s."""
        return await asyncio.wait_for(call, self.config.db_timeout_s)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a task's exception as seen (its joiners report it)."""
    if not task.cancelled():
        task.exception()
