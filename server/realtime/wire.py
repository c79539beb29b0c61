"""The websocket wire: frames built once per event, written straight to the socket.

uvicorn's websocket protocol sends each ASGI `websocket.send` through Starlette's
wrapper, uvicorn's dispatch and websockets' framing: at 1,000 subscribers the
py-spy profile of a burst (bench `--profile`, 2026-12-02) put a third of the web
process's CPU there, per subscriber, for the same bytes every time. A server
frame is never masked, so one event's frame is the same bytes for every client:
`server.realtime.framing.frame_text` builds it once, and `HubWebSocketProtocol` (uvicorn's sans-I/O
websockets protocol, which `server.serving.uvicorn_options` selects) lets the
endpoint write it with one `transport.write` and hear of client frames by a
callback, with no receive queue or reader task per connection.

Everything else — the handshake, pings, the closing handshake — stays
uvicorn's: each write is a whole frame, so they interleave at frame boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server.realtime.flag import Flag

#: the ASGI scope extension under which the protocol offers itself to the endpoint
WIRE_EXTENSION = "canvasflow.wire"


class _Listener:
    """Stands in for the protocol's receive queue once the endpoint listens by callback:
    every path that would queue an ASGI receive event calls the endpoint instead."""

    __slots__ = ("on_gone", "on_message")

    def __init__(
        self, on_message: Callable[[str | bytes], None], on_gone: Callable[[], None]
    ) -> None:
        self.on_message = on_message
        self.on_gone = on_gone

    def put_nowait(self, event: dict[str, Any]) -> None:
        """An ASGI receive event, handed over at once."""
        kind = event["type"]
        if kind == "websocket.receive":
            text = event.get("text")
            self.on_message(text if text is not None else event.get("bytes") or b"")
        elif kind == "websocket.disconnect":
            self.on_gone()

    def empty(self) -> bool:
        """Nothing is ever queued."""
        return True


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, offering the endpoint pre-framed writes and
    callbacks for client frames (under the scope extension WIRE_EXTENSION)."""

    #: frames may be written now: handshake done, no close sent, not lost, and the
    #: transport below its high-water mark. One attribute read per delivery, kept up to
    #: date by the setters below (uvicorn assigns the flags; the profile of a 1,000
    #: subscriber burst showed the checks as a tenth of the hub's own time)
    can_write = False
    _handshake_complete = False
    _close_sent = False
    _disconnected = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's asyncio.Event allocates its waiters' deque up front (~0.7 KB a
        # connection, tracemalloc of 1,000 idle tabs); a Flag only while a send waits
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def _update(self) -> None:
        self.can_write = (
            self._handshake_complete
            and not self._close_sent
            and not self._disconnected
            and self.writable.is_set()
        )

    @property
    def handshake_complete(self) -> bool:
        """The handshake is answered (uvicorn's flag)."""
        return self._handshake_complete

    @handshake_complete.setter
    def handshake_complete(self, value: bool) -> None:
        self._handshake_complete = value
        if hasattr(self, "writable"):
            self._update()

    @property
    def close_sent(self) -> bool:
        """A close frame (or a refusal) went out (uvicorn's flag)."""
        return self._close_sent

    @close_sent.setter
    def close_sent(self, value: bool) -> None:
        self._close_sent = value
        if hasattr(self, "writable"):
            self._update()

    @property
    def disconnected(self) -> bool:
        """The connection is lost (uvicorn's flag)."""
        return self._disconnected

    @disconnected.setter
    def disconnected(self, value: bool) -> None:
        self._disconnected = value
        if hasattr(self, "writable"):
            self._update()

    def pause_writing(self) -> None:
        """The transport's buffer passed its high-water mark: writes wait."""
        super().pause_writing()
        self._update()

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        super().resume_writing()
        self._update()

    def handle_connect(self, event: Any) -> None:
        """The handshake request: uvicorn builds the scope; we add ourselves to it."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WIRE_EXTENSION] = {"protocol": self}

    def listen(
        self, on_message: Callable[[str | bytes], None], on_gone: Callable[[], None]
    ) -> None:
        """From now on hand client frames and the disconnect to these callbacks.

        Whatever arrived before is handed over first, in order; the receive queue goes
        (the endpoint must not call `receive()` again)."""
        # the handshake is over: what only it read (the request's headers, the response)
        # need not be held for the connection's life
        self.response = None  # type: ignore[assignment]
        # websockets' parser generator keeps the request in a local for the connection's
        # life: its headers, parsed, were ~2.6 KB of every idle connection (tracemalloc)
        request = getattr(self, "request", None)
        if request is not None:
            request.headers.clear()
        self.request = None  # type: ignore[assignment]
        self.scope["headers"] = []
        queued = self.queue
        listener = _Listener(on_message, on_gone)
        self.queue = listener  # type: ignore[assignment]
        while not queued.empty():
            listener.put_nowait(queued.get_nowait())  # type: ignore[arg-type]
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        """A whole client message: straight to the listener (no read pause: it is handled
        before the next one is parsed)."""
        if not isinstance(self.queue, _Listener):
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past our close: the peer's close reply is all we still wait for
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.logger.info("Invalid UTF-8 in a client frame: closing with 1007.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            self.queue.on_message(text)
        else:
            self.queue.on_message(data)

    def write_frame(self, frame: bytes) -> None:
        """Write one pre-built frame now, whatever the buffer holds (the caller checks
        `can_write` first); ConnectionResetError once the connection is closing or gone."""
        if not self._handshake_complete or self._close_sent or self._disconnected:
            raise ConnectionResetError("websocket closed")
        self.transport.write(frame)


def wire_of(websocket: WebSocket) -> HubWebSocketProtocol:
    """The accepted websocket's protocol, or a RuntimeError saying how to serve with it."""
    ext = websocket.scope.get("extensions", {}).get(WIRE_EXTENSION)
    if not ext:
        raise RuntimeError(
            "GET /ws needs canvasflow's websocket protocol: run uvicorn with "
            "**server.serving.uvicorn_options(settings) (as `canvasflow web` does), "
            "which sets ws=HubWebSocketProtocol."
        )
    protocol: HubWebSocketProtocol = ext["protocol"]
    return protocol
