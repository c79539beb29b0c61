"""Delivery: `GET /ws`, the websocket endpoint. It checks the handshake, then only moves frames.

Client frames reach the connection by callback from the websocket protocol
(server/realtime/wire.py: rate limit → decode → hub), so an idle connection
holds no task but the one uvicorn runs the endpoint in. Frames the hub queues
on the connection's Outbox are wire bytes, written to the socket at once while
its buffer is below the high-water mark; only when it is not does a writer
task take over until the queue is empty again, and a wait longer than
`write_timeout_s` ends the connection (a client that stopped reading holds no
memory for long). The hub never awaits a
socket; a close is requested on the Outbox (slow consumer, too many errors,
going away) and carried out here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from common import metrics
from common.config import Settings
from common.protocol import frames
from common.protocol.frames import CloseCode, ErrorCode
from common.protocol.presence import Presence
from db import sessions
from db.users import User
from server.auth import authenticate, origin_allowed, session_hash
from server.realtime.hub import Hub
from server.realtime.outbox import Outbox
from server.realtime.subscription import Peer
from server.realtime.wire import HubWebSocketProtocol, wire_of
from server.state import app_state

Outbox.on_sample = metrics.WS_SEND_QUEUE.observe

log = logging.getLogger(__name__)


class TokenBucket:
    """Allows `burst` frames at once and `rate_per_s` a second after that."""

    __slots__ = ("burst", "rate_per_s", "tokens", "updated")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def websocket_endpoint(websocket: WebSocket) -> None:
    """GET /ws: authenticate the handshake, then serve the connection until it ends."""
    connection = await _handshake(websocket)
    if connection is not None:
        await connection.run()


async def serve_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """GET /ws straight from the app's entry (server/app.py), past the middleware and the
    router: their coroutines would stay suspended for the connection's whole life (~4.6 KB
    of the ~27 KB tracemalloc found per idle connection, 2026-12-02)."""
    # the WebSocket (its scope, cached headers) lives only as long as the handshake
    connection = await _handshake(WebSocket(scope, receive, send))
    if connection is not None:
        await connection.run()


async def _handshake(websocket: WebSocket) -> Connection | None:
    """Check the handshake and accept it; the connection to serve, or None if refused."""
    state = app_state(websocket)
    hub = state.hub
    refusal = await _refusal(websocket, hub, state.settings)
    # accept, then close with a code: a browser sees the close code (4401, 4403),
    # never the status of a refused handshake, and must know not to retry
    await websocket.accept()
    if refusal is not None:
        code, reason = refusal
        await websocket.close(code, reason)
        return None
    user = websocket.state.user
    outbox = Outbox(hub.config.send_queue_max, hub.config.send_queue_max_bytes)
    peer = Peer(user.id, outbox, session=session_hash(websocket), email=user.email)
    return Connection(wire_of(websocket), hub, peer)


async def _refusal(websocket: WebSocket, hub: Hub, settings: Settings) -> tuple[int, str] | None:
    """Why this handshake may not proceed, as (close code, reason), or None."""
    # a foreign page may not even learn whether its visitor's cookie is valid
    if not origin_allowed(websocket, settings):
        return CloseCode.FORBIDDEN_ORIGIN, "origin not allowed"
    if hub.closing:
        return CloseCode.GOING_AWAY, "server shutting down"
    try:
        # in the hub's turn, and shared by a session's tabs connecting at once (reads.py):
        # a connect storm waits instead of being told to come back
        user = await authenticate(websocket, lambda token_hash: _session_user(hub, token_hash))
    except Exception as exc:
        log.warning("websocket auth failed: %r", exc)
        return CloseCode.TRY_AGAIN_LATER, "cannot check the session now; retry"
    if user is None:
        return CloseCode.UNAUTHENTICATED, "log in: session cookie or Bearer token"
    return None


async def _session_user(hub: Hub, token_hash: bytes) -> User | None:
    """The session's user, read through the hub's gate, one read per session at a time."""
    return await hub.shared(
        ("session", token_hash),
        lambda: hub.db(sessions.user_for_session(hub.store.db, token_hash)),
    )


class Connection:
    """One accepted websocket: client frames by callback, frames out straight to the socket,
    a writer task only while the socket's buffer is full, and the close."""

    def __init__(self, wire: HubWebSocketProtocol, hub: Hub, peer: Peer) -> None:
        self.wire = wire
        self.hub = hub
        self.peer = peer
        peer.max_errors = hub.config.max_errors
        cfg = hub.config
        now = time.monotonic()
        self.bucket = TokenBucket(cfg.messages_per_s, cfg.message_burst, now)
        # a client resuming every project it follows (after a reconnect) sends one subscribe
        # each at once: subscribes draw on an allowance as large as the subscription limit
        # first, so a resume never trips the frame limit (and then the error limit)
        self.subscribes = TokenBucket(cfg.messages_per_s, cfg.max_subscriptions, now)
        #: presence frames have a bucket of their own: a moving cursor never eats the
        #: budget a subscribe needs, and over it they are dropped, not answered
        self.presence_bucket = TokenBucket(cfg.presence_per_s, cfg.presence_burst, now)
        #: when the client was last told its presence frames are being dropped
        self.presence_warned = float("-inf")
        #: drains the outbox while the socket's buffer is full; None while writes go out
        self.writer: asyncio.Task[None] | None = None
        #: a write failed: the socket is gone, there is nobody to send a close to
        self.send_failed = False
        #: the client left (its close frame, or the connection dropped)
        self.client_gone = False
        #: client frames are handled (False once a close is asked for)
        self.reading = True
        self.stop: asyncio.Future[None] | None = None

    def _stop(self) -> None:
        """End serving: the client went, a write failed, or a close was asked for."""
        stop = self.stop
        if stop is None or stop.done():
            return
        if self.peer.outbox.close_code == CloseCode.SLOW_CONSUMER:
            metrics.WS_RESYNCS.labels("slow_consumer").inc()
        stop.set_result(None)

    def _on_gone(self) -> None:
        self.client_gone = True
        self.reading = False
        self._stop()

    async def run(self) -> None:
        """Serve until the client leaves or the outbox asks for a close."""
        outbox = self.peer.outbox
        # one future, resolved by a close request or the client's leaving: the connection
        # needs no task of its own beyond the one uvicorn runs it in (profile: three per
        # connection held ~6 KB each idle; bench idle, 2026-12-02)
        self.stop = asyncio.get_running_loop().create_future()
        outbox.on_fail = self._stop
        outbox.sink = self._send_now
        if outbox.frames:
            self.writer = asyncio.create_task(self._write())
        self.hub.add_peer(self.peer)
        self.wire.listen(self._on_message, self._on_gone)
        try:
            # 1. serve: until the client goes, a write fails, or a close is forced
            await self.stop
            self.reading = False
            client_gone = self.client_gone or self.send_failed
            if not client_gone and outbox.close_code is None:
                outbox.fail(CloseCode.INTERNAL_ERROR, "internal error")
            # 2. a draining close (too many errors) lets the queued frames out first
            writer = self.writer
            if not client_gone and outbox.draining and writer is not None:
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), self.hub.config.close_timeout_s)
            client_gone = self.client_gone or self.send_failed
        finally:
            # 3. stop writing and leave every channel before the close goes out
            self.reading = False
            outbox.on_fail = None
            outbox.sink = None
            self.stop.cancel()
            if self.writer is not None:
                self.writer.cancel()
                await asyncio.gather(self.writer, return_exceptions=True)
            self.hub.remove_peer(self.peer)
        # 4. the close frame, bounded: a client that reads nothing cannot hold us
        if not client_gone and outbox.close_code is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(
                    self.wire.send(
                        {
                            "type": "websocket.close",
                            "code": outbox.close_code,
                            "reason": outbox.close_reason,
                        }
                    ),
                    self.hub.config.close_timeout_s,
                )

    def _send_now(self, frame: bytes) -> bool:
        """The outbox's sink: write `frame` now; False (queue it) while the socket's buffer
        is full, with a writer to send it once the buffer drains."""
        wire = self.wire
        if wire.can_write and self.writer is None:
            try:
                wire.transport.write(frame)
            except Exception:
                self._fail_send()
            return True
        if self.writer is None:
            # the buffer is past its high-water mark (or the socket is going): this frame
            # and later ones queue, and the writer sends them or finds the socket gone
            self.writer = asyncio.create_task(self._write())
        return False

    async def _write(self) -> None:
        """Send what queued, in order, each time the socket's buffer has drained."""
        outbox, wire = self.peer.outbox, self.wire
        timeout_s = self.hub.config.write_timeout_s
        try:
            while True:
                if not wire.writable.is_set():
                    await asyncio.wait_for(wire.writable.wait(), timeout_s)
                frame = outbox.take()
                if frame is None:
                    break
                wire.write_frame(frame)
        except Exception:
            # a timeout too: the client stopped reading, and its frames only pile up
            self._fail_send()
            return
        # nothing queued and no await since take(): the next frame may go straight out
        self.writer = None

    def _fail_send(self) -> None:
        """A write failed: the socket is gone; end the connection without a close frame."""
        self.send_failed = True
        self.peer.outbox.fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _on_message(self, text: str | bytes) -> None:
        """One client frame (the protocol calls this as it parses it)."""
        if not self.reading:
            return
        peer, cfg = self.peer, self.hub.config
        if isinstance(text, str) and _too_big(text, cfg.max_message_bytes):
            peer.outbox.finish(CloseCode.MESSAGE_TOO_BIG, "message too big (max 64 KiB)")
            self.reading = False
            return
        decoded: frames.ClientMessage | frames.ProtocolError
        if not isinstance(text, str):
            decoded = frames.ProtocolError(
                ErrorCode.INVALID_MESSAGE, "Send JSON in text frames, not binary."
            )
        else:
            try:
                decoded = frames.decode_client(text)
            except frames.ProtocolError as exc:
                decoded = exc
        now = time.monotonic()
        if isinstance(decoded, Presence):
            # a bucket of its own: a moving cursor never eats what a subscribe needs
            self._presence(decoded, now)
            return
        allowed = (
            isinstance(decoded, frames.Subscribe) and self.subscribes.take(now)
        ) or self.bucket.take(now)
        if not allowed:
            peer.client_error(
                ErrorCode.RATE_LIMITED,
                f"More than {cfg.messages_per_s:g} frames a second; this one was ignored.",
            )
        elif isinstance(decoded, frames.ProtocolError):
            peer.client_error(decoded.code, decoded.message)
        else:
            self._dispatch(decoded)
        if not peer.outbox.open:
            self.reading = False
            self._stop()

    def _presence(self, message: Presence, now: float) -> None:
        """A presence frame, under its own bucket: dropped (and said so, rarely) when over it."""
        if self.presence_bucket.take(now):
            self.hub.presence.update(self.peer, message)
        elif now - self.presence_warned >= 1.0:
            # once a second at most, not counted: the client sends too fast, nothing is broken
            self.presence_warned = now
            self.peer.client_error(
                ErrorCode.RATE_LIMITED,
                f"More than {self.hub.config.presence_per_s:g} presence frames a second; "
                "the extra ones are dropped.",
                count=False,
            )

    def _dispatch(self, message: frames.ClientMessage) -> None:
        """Act on one client frame."""
        if isinstance(message, frames.Ping):
            self.peer.send(frames.Pong())
        elif isinstance(message, frames.Subscribe):
            self.hub.subscribe(self.peer, message.project_id, message.since, message.presence)
        elif isinstance(message, Presence):
            self.hub.presence.update(self.peer, message)
        else:
            self.hub.unsubscribe(self.peer, message.project_id)


def _too_big(text: str, max_bytes: int) -> bool:
    """Whether `text` exceeds `max_bytes` of UTF-8 (encoding only when it might)."""
    if len(text) > max_bytes:
        return True
    # a character is at most 4 bytes: short texts need no encoding to be sure
    return len(text) * 4 > max_bytes and len(text.encode()) > max_bytes
