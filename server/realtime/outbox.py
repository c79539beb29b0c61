"""Backpressure: a connection's bounded queue of websocket frames. Plain code: no I/O.

Fan-out never awaits a client. While the socket keeps up, `offer` hands each
frame to the connection's `sink`, which writes it at once (as websockets'
`broadcast()` does: no task switch per frame); once a write has to wait,
frames queue here and the connection's writer task drains them in order. A
full queue — `max_frames` frames or `max_bytes` bytes — means the client
cannot keep up: the outbox fails with SLOW_CONSUMER, the client reconnects
and resumes with `since`, and nobody else is slowed down. Droppable frames
(progress ticks, presence) are dropped once the queue is half full.

Frames are wire bytes (server/realtime/wire.py builds them once per event), so
`max_bytes` counts exactly what the socket will carry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from common.protocol.frames import CloseCode


class Outbox:
    """A connection's bounded queue of websocket frames (wire bytes)."""

    # an outbox per connection, thousands of them: no instance dict, and the two asyncio
    # Events and the queue (a deque each, ~0.6 KB) are made only when something needs them
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
        "max_bytes",
        "max_frames",
        "on_fail",
        "queued_bytes",
        "sink",
    )

    #: called with the queue depth on one offer in 16 (the endpoint points it at a metric)
    on_sample: Callable[[int], None] | None = None

    def __init__(self, max_frames: int, max_bytes: int = 1 << 62) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        #: the queued frames; an empty tuple (no deque) while nothing waits, as it is
        #: for nearly every connection nearly all the time
        self.frames: deque[bytes] | tuple[()] = ()
        #: bytes of the queued frames
        self.queued_bytes = 0
        #: the connection's send-without-waiting, tried when nothing is queued: True when
        #: it took the frame (no queue, no writer wake-up), False to queue it (None: queue)
        self.sink: Callable[[bytes], bool] | None = None
        self._failed = False
        self._failed_event: asyncio.Event | None = None
        #: called when a close is asked for (fail or finish): the endpoint's cheap way to
        #: hear of it (no task)
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

    def offer(self, frame: bytes, droppable: bool = False) -> bool:
        """Queue `frame`; False when it was not queued."""
        if self.close_code is not None:
            return False
        depth = len(self.frames)
        if droppable and (depth >= self.max_frames // 2 or self.queued_bytes > self.max_bytes // 2):
            self.dropped += 1
            return False
        # one frame may always wait, however big (a snapshot): the limit is on what piles up
        if depth >= self.max_frames or (depth and self.queued_bytes + len(frame) > self.max_bytes):
            self.fail(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect with since")
            return False
        self._offers += 1
        if not self._offers & 15 and Outbox.on_sample is not None:
            # sampled: observing every frame of every client cost a fifth of the fan-out
            Outbox.on_sample(depth)
        if not depth and self.sink is not None and self.sink(frame):
            return True
        if not depth:
            self.frames = deque()
        self.frames.append(frame)  # type: ignore[union-attr]
        self.queued_bytes += len(frame)
        self._wake_writer()
        return True

    def fail(self, code: int, reason: str) -> None:
        """Close now: drop what is queued (the client resyncs anyway)."""
        if self.close_code is not None and not self.draining:
            return
        self.close_code, self.close_reason, self.draining = code, reason, False
        self.frames = ()
        self.queued_bytes = 0
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
        if self.on_fail is not None:
            self.on_fail()

    def take(self) -> bytes | None:
        """The next frame to send, or None when there is none now."""
        if self.close_code is not None and not self.draining:
            return None
        frames = self.frames
        if not frames:
            return None
        frame = frames.popleft()
        self.queued_bytes -= len(frame)
        if not frames:
            self.frames = ()
        return frame

    @property
    def done(self) -> bool:
        """Whether the writer has nothing more to send, ever."""
        return self.close_code is not None and (not self.draining or not self.frames)

    async def next(self) -> bytes | None:
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
