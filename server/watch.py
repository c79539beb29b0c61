"""`canvasflow watch PROJECT_ID`: print a project's live events, resuming after a disconnect.

A small Python client of GET /ws (the `websockets` library): it subscribes,
prints the snapshot's summary and then one line per event, and when the
connection drops it reconnects with exponential backoff and full jitter and
resubscribes with `since` = the last seq it printed, so nothing is missed and
nothing is printed twice. It is also the reference for writing other clients.

Exit codes: 0 when the project is deleted, 1 when it is not found (or not
yours), 2 when the server refuses the credentials or the Origin, 130 on ^C.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection, connect

from common.config import load_settings
from server import protocol
from server.protocol import CloseCode

#: close codes after which reconnecting cannot help
_FATAL: dict[int, str] = {
    CloseCode.UNAUTHENTICATED: "not logged in",
    CloseCode.FORBIDDEN_ORIGIN: "origin refused",
}
#: error codes after which the same subscribe may succeed a little later
_RETRY = {protocol.ErrorCode.UNAVAILABLE, protocol.ErrorCode.RATE_LIMITED}


def ws_url(url: str) -> str:
    """`url` as a websocket address: http(s) becomes ws(s), and a bare host gets `/ws`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class Watcher:
    """Follows one project over a reconnecting websocket and prints what happens."""

    def __init__(
        self,
        url: str,
        token: str,
        project_id: UUID,
        out: Callable[[str], None],
        *,
        as_json: bool = False,
        initial_delay_s: float = 0.5,
        max_delay_s: float = 4.0,
    ) -> None:
        self.url = ws_url(url)
        self.token = token
        self.project_id = project_id
        self.out = out
        self.as_json = as_json
        self.initial_delay_s = initial_delay_s
        self.max_delay_s = max_delay_s
        #: the seq of the last event printed (or of the snapshot), None before any
        self.seq: int | None = None
        self.attempt = 0

    async def run(self) -> int:
        """Watch until the project is deleted or the server refuses us; the exit code."""
        while True:
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    compression=None,
                    proxy=None,
                    open_timeout=10,
                ) as ws:
                    code = await self._follow(ws)
                    if code is not None:
                        return code
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in _FATAL:
                    self._note(f"refused: {_FATAL[code]} (close {code})")
                    return 2
                self._note(f"disconnected: {exc}")
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                self._note(f"cannot connect: {exc!r}")
            await self._backoff()

    async def _follow(self, ws: ClientConnection) -> int | None:
        """One connection: subscribe (with since once we have a seq) and print frames."""
        await self._subscribe(ws)
        async for raw in ws:
            self.attempt = 0  # the server answers: the backoff starts over
            message = protocol.decode_server(raw)
            if self.as_json and not isinstance(message, protocol.Event):
                self.out(raw if isinstance(raw, str) else raw.decode())
            if isinstance(message, protocol.Snapshot):
                self.seq = message.seq
                if not self.as_json:
                    self.out(
                        f"snapshot  seq={message.seq} nodes={len(message.nodes)} "
                        f"connections={len(message.connections)} jobs={len(message.jobs)}"
                    )
            elif isinstance(message, protocol.Subscribed):
                self.seq = message.seq
                if not self.as_json:
                    self.out(f"resumed   seq={message.seq}")
            elif isinstance(message, protocol.Event):
                await self._event(ws, message, raw)
            elif isinstance(message, protocol.JobProgress):
                if not self.as_json:
                    self.out(f"progress  job={message.job_id} {message.progress:.0%}")
            elif isinstance(message, protocol.Unsubscribed):
                if not self.as_json:
                    self.out("unsubscribed: the project was deleted")
                return 0
            elif isinstance(message, protocol.Error):
                if not self.as_json:
                    self.out(f"error     {message.code}: {message.message}")
                if message.code == protocol.ErrorCode.PROJECT_NOT_FOUND:
                    return 1
                if message.code in (
                    protocol.ErrorCode.UNAVAILABLE,
                    protocol.ErrorCode.RATE_LIMITED,
                ):
                    await self._backoff()
                    await self._subscribe(ws)
        return None

    async def _event(self, ws: ClientConnection, event: protocol.Event, raw: Any) -> None:
        """Print an event once, in order; on a gap, ask again from our seq."""
        if self.seq is None or event.seq <= self.seq:
            return  # before our snapshot, or a duplicate
        if event.seq != self.seq + 1:
            self._note(f"gap after seq {self.seq} (got {event.seq}): resubscribing")
            await self._subscribe(ws)
            return
        self.seq = event.seq
        if self.as_json:
            self.out(raw if isinstance(raw, str) else raw.decode())
        else:
            data = msgspec.json.encode(event.data).decode()
            if len(data) > 160:
                data = data[:157] + "..."
            self.out(f"event     seq={event.seq} {event.kind} {data}")

    async def _subscribe(self, ws: ClientConnection) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "project_id": str(self.project_id)}
        if self.seq is not None:
            frame["since"] = self.seq
        await ws.send(msgspec.json.encode(frame).decode())

    async def _backoff(self) -> None:
        """Sleep before the next try: full jitter, doubling up to max_delay_s."""
        cap = min(self.max_delay_s, self.initial_delay_s * 2**self.attempt)
        self.attempt += 1
        delay = random.uniform(0, cap)
        self._note(f"retrying in {delay:.1f} s")
        await asyncio.sleep(delay)

    def _note(self, text: str) -> None:
        print(f"canvasflow watch: {text}", file=sys.stderr, flush=True)


def main_watch(project_id: str, url: str | None, token: str | None, as_json: bool) -> int:
    """The `canvasflow watch` command."""
    settings = load_settings()
    url = url or settings.watch_url or settings.public_url
    token = token or settings.watch_token
    if not token:
        print("canvasflow watch: give --token or set CANVASFLOW_TOKEN", file=sys.stderr)
        return 2
    try:
        pid = UUID(project_id)
    except ValueError:
        print(f"canvasflow watch: {project_id!r} is not a project id", file=sys.stderr)
        return 2

    def out(line: str) -> None:
        print(line, flush=True)

    watcher = Watcher(url, token, pid, out, as_json=as_json)
    try:
        return asyncio.run(watcher.run())
    except KeyboardInterrupt:
        return 130
