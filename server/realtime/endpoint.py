"""Delivery: `GET /ws`, the websocket endpoint. It checks the handshake, then only moves frames.

Each connection runs a reader task (client frames → rate limit → decode →
hub). Frames the hub queues on the connection's Outbox are written at once
while the socket keeps up; only when a write has to wait (the socket's buffer
is full) does a writer task take over until the queue is empty again, and a
write that waits longer than `write_timeout_s` ends the connection (a client
that stopped reading holds no memory for long). The hub never awaits a
socket; a close is requested on the Outbox (slow consumer, too many errors,
going away) and carried out here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from starlette.websockets import WebSocket

from common import metrics
from common.config import Settings
from common.protocol import frames
from common.protocol.frames import CloseCode, ErrorCode
from common.protocol.presence import Presence
from server.auth import authenticate, origin_allowed, session_hash
from server.realtime.hub import Hub
from server.realtime.outbox import Outbox
from server.realtime.subscription import Peer
from server.state import app_state

Outbox.on_sample = metrics.WS_SEND_QUEUE.observe

log = logging.getLogger(__name__)

#: only a frame with this in it may be a presence frame (a substring test spares the
#: decode of every other frame before its rate limit)


class TokenBucket:
    """Allows `burst` frames at once and `rate_per_s` a second after that."""

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
    state = app_state(websocket)
    hub = state.hub
    refusal = await _refusal(websocket, hub, state.settings)
    # accept, then close with a code: a browser sees the close code (4401, 4403),
    # never the status of a refused handshake, and must know not to retry
    await websocket.accept()
    if refusal is not None:
        code, reason = refusal
        await websocket.close(code, reason)
        return
    user = websocket.state.user
    outbox = Outbox(hub.config.send_queue_max, hub.config.send_queue_max_bytes)
    peer = Peer(user.id, outbox, session=session_hash(websocket), email=user.email)
    await Connection(websocket, hub, peer).run()


async def _refusal(websocket: WebSocket, hub: Hub, settings: Settings) -> tuple[int, str] | None:
    """Why this handshake may not proceed, as (close code, reason), or None."""
    # a foreign page may not even learn whether its visitor's cookie is valid
    if not origin_allowed(websocket, settings):
        return CloseCode.FORBIDDEN_ORIGIN, "origin not allowed"
    if hub.closing:
        return CloseCode.GOING_AWAY, "server shutting down"
    try:
        user = await asyncio.wait_for(authenticate(websocket), hub.config.db_timeout_s)
    except Exception as exc:
        log.warning("websocket auth failed: %r", exc)
        return CloseCode.TRY_AGAIN_LATER, "cannot check the session now; retry"
    if user is None:
        return CloseCode.UNAUTHENTICATED, "log in: session cookie or Bearer token"
    return None


class Connection:
    """One accepted websocket: a reader task, a writer task, and the close."""

    def __init__(self, websocket: WebSocket, hub: Hub, peer: Peer) -> None:
        self.websocket = websocket
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
        #: drains the outbox while a write waits; None while writes go straight out
        self.writer: asyncio.Task[None] | None = None
        #: a write failed: the socket is gone, there is nobody to send a close to
        self.send_failed = False

    async def run(self) -> None:
        """Serve until the client leaves or the outbox asks for a close."""
        outbox = self.peer.outbox
        # one future, resolved by the outbox's failure or the reader's end: lighter than
        # another task, or asyncio.wait's set and callbacks, on every connection
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_fail(_: object = None) -> None:
            if stop.done():
                return
            if outbox.close_code == CloseCode.SLOW_CONSUMER:
                metrics.WS_RESYNCS.labels("slow_consumer").inc()
            stop.set_result(None)

        outbox.on_fail = on_fail
        outbox.sink = self._send_now
        if outbox.frames:
            self.writer = asyncio.create_task(self._write(None))
        self.hub.add_peer(self.peer)
        reader = asyncio.create_task(self._read())
        reader.add_done_callback(on_fail)
        client_gone = False
        try:
            # 1. serve: until the client goes, a write fails, or a close is forced
            await stop
            if reader.done() and not reader.cancelled() and reader.exception() is None:
                client_gone = reader.result()
            client_gone = client_gone or self.send_failed
            if not client_gone and outbox.close_code is None:
                outbox.fail(CloseCode.INTERNAL_ERROR, "internal error")
            # 2. a draining close (too many errors) lets the queued frames out first
            writer = self.writer
            if not client_gone and outbox.draining and writer is not None:
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), self.hub.config.close_timeout_s)
            client_gone = client_gone or self.send_failed
        finally:
            # 3. stop both tasks and leave every channel before the close goes out
            outbox.on_fail = None
            outbox.sink = None
            stop.cancel()
            tasks = [t for t in (reader, self.writer) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.hub.remove_peer(self.peer)
        # 4. the close frame, bounded: a client that reads nothing cannot hold us
        if not client_gone and outbox.close_code is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(
                    self.websocket.close(outbox.close_code, outbox.close_reason),
                    self.hub.config.close_timeout_s,
                )

    def _send_now(self, frame: str) -> bool:
        """The outbox's sink: write `frame` now; False (queue it) while a writer is busy."""
        if self.writer is not None:
            return False
        try:
            rest = _step(self.websocket.send_text(frame))
        except Exception:
            self._fail_send()
            return True
        if rest is not None:
            # the socket's buffer is full: the send waits, and later frames queue behind it
            self.writer = asyncio.create_task(self._write(rest))
        return True

    async def _write(self, rest: Awaitable[None] | None) -> None:
        """Finish the send that had to wait, then send what queued meanwhile, in order."""
        outbox = self.peer.outbox
        timeout_s = self.hub.config.write_timeout_s
        try:
            if rest is not None:
                await asyncio.wait_for(rest, timeout_s)
            while (frame := outbox.take()) is not None:
                await asyncio.wait_for(self.websocket.send_text(frame), timeout_s)
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

    async def _read(self) -> bool:
        """Handle client frames; True when the client left, False when we stop reading."""
        peer, cfg = self.peer, self.hub.config
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return True
            text = message.get("text")
            if text is not None and _too_big(text, cfg.max_message_bytes):
                peer.outbox.finish(CloseCode.MESSAGE_TOO_BIG, "message too big (max 64 KiB)")
                return False
            decoded: frames.ClientMessage | frames.ProtocolError
            if text is None:
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
                continue
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
                return False

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


def _step(coro: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run `coro` now, up to its end or its first suspension; None when it ended, else an
    awaitable that finishes it (to be awaited in a task). Its exceptions propagate.

    An ASGI send returns without suspending while the socket accepts data, so a frame
    costs no task switch; only a send that must wait for the socket needs a task."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return _finish(coro, waiting_on)


@types.coroutine
def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, None, None]:
    """Go on driving a coroutine that `_step` started, as a task would have."""
    # Each value the coroutine yields (the future it waits for) goes up to the task
    # awaiting us, which resumes us when it is done; what the task throws in
    # (a cancellation) goes down into the coroutine.
    while True:
        try:
            yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                return


def _too_big(text: str, max_bytes: int) -> bool:
    """Whether `text` exceeds `max_bytes` of UTF-8 (encoding only when it might)."""
    if len(text) > max_bytes:
        return True
    # a character is at most 4 bytes: short texts need no encoding to be sure
    return len(text) * 4 > max_bytes and len(text.encode()) > max_bytes
