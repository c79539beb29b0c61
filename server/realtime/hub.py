"""The hub: project events from the bus, in seq order, to every websocket of this process.

One hub per web process. It keeps one `Channel` per followed project,
subscribed on the bus when its first local subscriber arrives and
unsubscribed when the last one leaves (the shape of encode/broadcaster's
`Broadcast.subscribe`), and it runs the subscribe protocol:
subscribe-before-snapshot, so no event can fall between the state a client
is sent and the stream that follows it. Ordering is the channel's job
(channel.py), backpressure the outbox's (outbox.py), the safety net the
sweep's (sweep.py). Who may follow a project is the one access decision
(server/access.py), read when the subscription starts and applied again with
every membership event it is sent (membership.py); presence — who else is
here — is presence.py's, which the hub only tells of subscriptions that
start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar
from uuid import UUID

from common import metrics
from common.keys import project_channel
from common.protocol import frames
from common.protocol.frames import CloseCode, ErrorCode
from db.changes import Store
from db.projects import current_seq
from server.present import Presenter
from server.realtime.bus import Bus
from server.realtime.catch_up import catch_up
from server.realtime.catch_up import resync as resync_subscription
from server.realtime.channel import Channel, Resync, Start
from server.realtime.config import HubConfig, HubError
from server.realtime.membership import REVOKED, standing
from server.realtime.presence import PresenceHub
from server.realtime.reads import ReadGate, SingleFlight
from server.realtime.shutdown import SignalRelay
from server.realtime.subscription import Peer, Subscription
from server.realtime.sweep import check_sessions, sweep_channels, sweep_loop

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        self.config = config or HubConfig()
        self.channels: dict[UUID, Channel] = {}
        self.peers: set[Peer] = set()
        self.closing = False
        self._by_name: dict[str, Channel] = {}
        #: every background task the hub starts (channel workers and openers, unsubscribes,
        #: shared reads): referenced until it ends, so none is destroyed while pending,
        #: and cancelled on stop
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gate = ReadGate(
            self.config.db_concurrency, self.config.db_queue_timeout_s, self.config.db_timeout_s
        )
        self.flights = SingleFlight(self.spawn)
        self._sweeper: asyncio.Task[None] | None = None
        self.bus = Bus(
            redis_url,
            on_message=self._on_message,
            on_confirm=self._on_confirm,
            on_lost=self._on_lost,
            wanted=self._by_name.keys,
            is_wanted=self._by_name.__contains__,
            backoff_initial_s=self.config.redis_backoff_initial_s,
            backoff_max_s=self.config.redis_backoff_max_s,
        )
        self.presence = PresenceHub(store.redis, redis_url, store.namespace, self.config)
        self._signals = SignalRelay(self._going_away_briefly, self.spawn)
        self._no_peers = asyncio.Event()
        self._no_peers.set()

    @property
    def redis_ready(self) -> asyncio.Event:
        """Set while the bus holds a live pub/sub connection."""
        return self.bus.ready

    # -- life cycle

    async def start(self) -> None:
        """Open the bus (in the background), start the sweep, take over the stop signals."""
        self.bus.start()
        self.presence.start()
        self._sweeper = asyncio.create_task(sweep_loop(self), name="hub-sweeper")
        self._signals.install()

    async def stop(self) -> None:
        """Tell every client we are going away, then drop channels and Redis."""
        self.closing = True
        self._signals.restore()
        # 1. clients first: each connection closes with 1001 and reconnects elsewhere
        self.going_away()
        # 2. the background tasks: sweep, channel workers and openers
        tasks: list[asyncio.Task[Any]] = [t for t in (self._sweeper,) if t]
        for ch in list(self.channels.values()):
            tasks += [t for t in (ch.worker, ch.opening) if t]
            self.close_channel(ch, unsubscribe=False)
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # 3. presence: this process's tabs leave every project at once, not by expiry
        await self.presence.stop()
        # 4. Redis last
        await self.bus.stop()

    def going_away(self) -> None:
        """Close every connection with 1001: the process is stopping."""
        self.closing = True
        for peer in list(self.peers):
            peer.outbox.fail(CloseCode.GOING_AWAY, "server shutting down")

    async def _going_away_briefly(self) -> None:
        """On a stop signal: 1001 to everyone, and a moment for the frames to get out."""
        if not self.closing:
            self.going_away()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_peers.wait(), 1.0)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """A background task the hub keeps a reference to until it ends."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def db(self, call: Awaitable[T]) -> T:
        """A Postgres call of the hub: in its turn (reads.py), then bounded by db_timeout_s."""
        return await self.gate.read(call)

    async def shared(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """A read that concurrent callers with the same key share (reads.py)."""
        return await self.flights.run(key, make)

    async def sweep(self) -> None:
        """One safety-net pass over the channels (also run every sweep_interval_s)."""
        await sweep_channels(self)

    async def check_sessions(self) -> None:
        """One session check over the connections (also run every sweep_interval_s)."""
        await check_sessions(self)

    # -- connections

    def add_peer(self, peer: Peer) -> None:
        """Register a new connection."""
        self.peers.add(peer)
        self._no_peers.clear()
        metrics.WS_CONNECTIONS.inc()

    def remove_peer(self, peer: Peer) -> None:
        """Forget a connection and everything it followed."""
        for sub in list(peer.subscriptions.values()):
            self.end(sub)
        if peer in self.peers:
            self.peers.discard(peer)
            metrics.WS_CONNECTIONS.dec()
        if not self.peers:
            self._no_peers.set()

    def subscribe(
        self, peer: Peer, project_id: UUID, since: int | None, presence: bool = False
    ) -> None:
        """Start (or restart) following a project; answers arrive on the peer's outbox."""
        old = peer.subscriptions.get(project_id)
        if old is not None:
            # a resubscribe (e.g. after the client saw a gap) replaces the subscription
            self.end(old)
        elif len(peer.subscriptions) >= self.config.max_subscriptions:
            peer.client_error(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"At most {self.config.max_subscriptions} subscriptions per connection; "
                "unsubscribe from one first.",
                project_id,
            )
            return
        sub = Subscription(peer, project_id, presence)
        peer.subscriptions[project_id] = sub
        metrics.WS_SUBSCRIPTIONS.inc()
        sub.task = asyncio.create_task(self._run_subscribe(sub, since))

    def unsubscribe(self, peer: Peer, project_id: UUID) -> None:
        """Stop following a project (idempotent); answered with `unsubscribed`."""
        sub = peer.subscriptions.get(project_id)
        if sub is not None:
            self.end(sub)
        peer.send(frames.Unsubscribed(project_id=project_id))

    async def _run_subscribe(self, sub: Subscription, since: int | None) -> None:
        """The task behind one subscribe frame: errors become `error` frames."""
        try:
            await self._subscribe(sub, since)
        except HubError as exc:
            self.end(sub)
            sub.peer.client_error(
                exc.code, exc.message, sub.project_id, count=exc.code != ErrorCode.UNAVAILABLE
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("subscribe to %s failed: %r", sub.project_id, exc)
            self.end(sub)
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
        # 1. Only members may follow a project (the one access decision); a stranger is
        #    told it does not exist.
        #    A user's tabs subscribing at once share one check.
        user_id = sub.peer.user_id
        sub.role, sub.added_seq = await self.shared(
            ("standing", user_id, project_id),
            lambda: self.db(standing(self.store, user_id, project_id)),
        )
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
        await catch_up(self, ch, sub, since)
        # 4. Now that the client holds the project, it sees who else is here (and they it).
        if sub.presence and not sub.ended:
            await self.presence.join(sub)

    def resync(self, ch: Channel, sub: Subscription, reason: str) -> None:
        """Bring one subscription back in step: buffer again and catch up from its seq."""
        resync_subscription(self, ch, sub, reason)

    def role_changed(self, sub: Subscription) -> None:
        """An event changed the subscription's role: end it if revoked, else tell presence."""
        if sub.ended:
            return
        if sub.revoked:
            self.end(sub)
            sub.peer.client_error(ErrorCode.ACCESS_REVOKED, REVOKED, sub.project_id, count=False)
        else:
            self.presence.sync_role(sub)

    def end(self, sub: Subscription) -> None:
        """Detach a subscription from its channel and its connection (idempotent)."""
        if sub.ended:
            return
        sub.ended = True
        self.presence.leave(sub)
        metrics.WS_SUBSCRIPTIONS.dec()
        if sub.peer.subscriptions.get(sub.project_id) is sub:
            del sub.peer.subscriptions[sub.project_id]
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
        ch = self.channels.get(sub.project_id)
        if ch is not None and sub in ch.subscribers:
            ch.subscribers.discard(sub)
            if not ch.subscribers:
                self.close_channel(ch)

    # -- channels

    def _channel_for(self, project_id: UUID) -> Channel:
        """The project's channel, opened on its first subscriber."""
        ch = self.channels.get(project_id)
        if ch is None:
            name = project_channel(self.store.namespace, project_id)
            ch = Channel(self, project_id, name)
            self.channels[project_id] = ch
            self._by_name[name] = ch
            metrics.WS_CHANNELS.set(len(self.channels))
            ch.opening = self.spawn(self._open_channel(ch))
            # joiners may all be gone by the time it fails: nobody else reads its error
            ch.opening.add_done_callback(_retrieve)
        return ch

    async def _open_channel(self, ch: Channel) -> None:
        """SUBSCRIBE in Redis, wait for the confirmation, then set the baseline seq."""
        try:
            # a. From Redis's confirmation on, every publish on the channel reaches us.
            await self.bus.subscribe(ch.name)
            try:
                await asyncio.wait_for(ch.confirmed.wait(), self.config.subscribe_confirm_timeout_s)
            except TimeoutError:
                # Redis is down or slow: carry on from Postgres. When the listener
                # (re)subscribes, a confirmation after the baseline triggers a resync
                # from the log, so nothing committed in between is lost.
                log.warning("Redis did not confirm %s; serving it from Postgres", ch.name)
            # b. The baseline: every change up to it is committed, and every later one
            #    reaches the channel through Redis or a gap fill.
            seq = await self.db(current_seq(self.store.db, ch.project_id))
            if seq is None:
                raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
            ch.push(Start(seq))
            await ch.started.wait()
        except BaseException:
            self.close_channel(ch)
            raise

    def close_channel(self, ch: Channel, unsubscribe: bool = True) -> None:
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
            self.spawn(self.bus.unsubscribe(ch.name))

    # -- the bus's callbacks

    def _on_message(self, name: str, payload: bytes) -> None:
        ch = self._by_name.get(name)
        if ch is not None:
            ch.push(payload)

    def _on_confirm(self, name: str) -> None:
        ch = self._by_name.get(name)
        if ch is None:
            return
        if ch.started.is_set() and not ch.confirmed.is_set():
            # subscribed again after the baseline (a reconnect, or a late confirm):
            # whatever was published meanwhile is only in the log
            ch.push(Resync())
        ch.confirmed.set()

    def _on_lost(self) -> None:
        # confirmations on the next connection mean "resync" for started channels
        for ch in self.channels.values():
            ch.confirmed.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a task's exception as seen (its joiners report it)."""
    if not task.cancelled():
        task.exception()
