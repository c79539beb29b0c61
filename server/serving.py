"""How uvicorn serves canvasflow: trusted proxies, a connection limit, a header-read timeout.

uvicorn has a keep-alive timeout (armed only once a response is complete)
and `limit_concurrency` (checked only once a request's headers are complete,
and never for websocket handshakes), but nothing bounds how long a client
may take to send its headers: a socket that sends half a request line, or
nothing, is held forever (the abuse probe held 1,000 for 70 s). So the HTTP
protocol here is uvicorn's own with three additions:

- a connection beyond `max_connections` (HTTP and websocket together) is
  answered `503 unavailable` and closed before anything is read;
- a request's headers must arrive within `header_timeout_s` of its first
  byte (of the connection's opening for the first request), else the
  connection is closed (`408` when part of a first request came);
- headers may weigh `MAX_HEADER_BYTES` at most (`431`; httptools has no
  limit of its own, h11 gets the same one as `h11_max_incomplete_event_size`).

Body reads are bounded in the ASGI layer (`server.observe`), where the
time the app waits for the next piece is known. `uvicorn_options` is what
`canvasflow web` and the tests' server both pass to uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from common.config import Settings
from server.realtime.wire import HubWebSocketProtocol

log = logging.getLogger(__name__)

#: the most header bytes a request may send (h11's default is 16 KiB; cookies stay far below)
MAX_HEADER_BYTES = 64 * 1024
_REFUSAL_LOG_INTERVAL_S = 10.0
#: how long a refused connection may take to read its 503 before it is closed
_REFUSED_LINGER_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits above, as the protocol reads them."""

    header_timeout_s: float = 10.0
    max_connections: int = 20_000
    max_header_bytes: int = MAX_HEADER_BYTES


def _response(status: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    ).encode()
    return head + extra + b"\r\n" + body


_BUSY = _response(
    "503 Service Unavailable",
    b'{"error":{"code":"unavailable","message":"This server holds too many connections; '
    b'retry in 1 s."}}',
    b"retry-after: 1\r\n",
)
_SLOW = _response(
    "408 Request Timeout",
    b'{"error":{"code":"request_timeout","message":"The request headers took too long."}}',
)
_TOO_BIG = _response(
    "431 Request Header Fields Too Large",
    b'{"error":{"code":"headers_too_large","message":"The request headers are too large."}}',
)


class _ReadGuard(asyncio.Protocol):
    """Mixed in before one of uvicorn's HTTP protocols (which supply the attributes below)."""

    # set by uvicorn's protocol
    cycle: Any
    connections: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _last_refusal_log = -_REFUSAL_LOG_INTERVAL_S

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._received = False
        self._refused = False
        self._admitted = False
        self._upgraded = False

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self._limits.header_timeout_s, self._headers_too_slow
            )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, transport: asyncio.Transport, answer: bytes) -> None:
        """Answer, half-close, and drop what the client still sends until it closes (or a
        second passes): closing with its request unread would reset the connection and lose
        the answer before the client reads it."""
        self._refused = True
        self._disarm()
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(_REFUSED_LINGER_S, transport.close)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            # an idle connection is simply closed; a half-sent first request is told why (on a
            # used connection the bytes may be the rest of a body nobody read)
            if self._received and self.cycle is None:
                self.transport.write(_SLOW)
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Refuse past the connection limit; otherwise start the clock on the first headers."""
        if len(self.connections) >= self._limits.max_connections:
            # uvloop's transports are not asyncio.Transport subclasses, but write like one
            self._refuse(cast(asyncio.Transport, transport), _BUSY)
            now = time.monotonic()
            if now - _ReadGuard._last_refusal_log >= _REFUSAL_LOG_INTERVAL_S:
                _ReadGuard._last_refusal_log = now
                log.warning("refusing connections: %d open", len(self.connections))
            return
        super().connection_made(transport)
        self._admitted = True
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn's parser, then start or stop the clock on the headers still to come."""
        if self._refused or self._upgraded:
            return
        self._received = True
        super().data_received(data)
        if self._refused:
            return
        if self._upgraded or self.transport.is_closing():
            self._disarm()
        elif self._waiting_for_headers():
            # the deadline runs from the first byte: dripping bytes does not move it (bytes
            # after an early response, of a body nobody reads, run on the same clock)
            self._arm()
        else:
            self._disarm()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes and not self._refused:
            self._refuse(self.transport, _TOO_BIG)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock; a connection refused at once was never uvicorn's."""
        self._disarm()
        if self._admitted:
            super().connection_lost(exc)

    def _upgrading(self) -> None:
        # the websocket protocol takes the transport over: our clock must not close it
        self._upgraded = True
        self._disarm()


class GuardedH11Protocol(_ReadGuard, H11Protocol):
    """uvicorn's h11 protocol with the read guard."""

    def handle_websocket_upgrade(self, event: Any) -> None:
        """Hand over to the websocket protocol, clock stopped."""
        self._upgrading()
        super().handle_websocket_upgrade(event)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    GuardedProtocol: type[_ReadGuard] = GuardedH11Protocol
else:

    class GuardedHttpToolsProtocol(_ReadGuard, HttpToolsProtocol):
        """uvicorn's httptools protocol (its `auto` choice) with the read guard.

        httptools has no header size limit of its own: the parser's callbacks
        count the request line and header bytes of each request here.
        """

        def on_message_begin(self) -> None:
            """A new request: its header bytes count from zero."""
            self._header_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            """Part of the request target."""
            self._count_header_bytes(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            """One header line."""
            self._count_header_bytes(len(name) + len(value) + 4)
            super().on_header(name, value)

        # the parser finishes the chunk it is in after a refusal: nothing of it may run
        def on_headers_complete(self) -> None:
            """Start the request, unless it was refused."""
            if not self._refused:
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            """Body bytes, unless the request was refused."""
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            """The end of the request, unless it was refused."""
            if not self._refused:
                super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            """Hand over to the websocket protocol, clock stopped."""
            self._upgrading()
            super().handle_websocket_upgrade()

    GuardedProtocol = GuardedHttpToolsProtocol


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The protocol's limits from the settings."""
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s, max_connections=settings.max_connections
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn keyword arguments: the guarded protocol and who may forward client addresses."""
    return {
        # a partial of a module-level class: picklable for uvicorn's --workers processes
        "http": functools.partial(GuardedProtocol, limits=connection_limits(settings)),
        # X-Forwarded-For is believed only from these; without any, the socket's peer is the
        # client (uvicorn would otherwise trust 127.0.0.1, and FORWARDED_ALLOW_IPS)
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        # uvicorn's sans-I/O websockets protocol, letting the hub write pre-built frames
        # straight to the socket and hear client frames by callback (server/realtime/wire.py)
        "ws": HubWebSocketProtocol,
    }
