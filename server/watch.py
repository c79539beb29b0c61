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
import contextlib
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection, connect

from common import protocol
from common.config import load_settings
from common.protocol.mirror import Mirror, Stop


def ws_url(url: str) -> str:
    """`url` as a websocket address: http(s) becomes ws(s), and a bare host gets `/ws`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class Watcher:
    """Follows one project over a reconnecting websocket and prints what happens.

    The rules (seq, gaps, resume with `since`, backoff, which closes are
    final) are the shared client mirror's (common/protocol/mirror.py); this
    class only moves frames and prints.
    """

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
        self.mirror = Mirror(initial_backoff_s=initial_delay_s, max_backoff_s=max_delay_s)
        self.mirror.subscribe(project_id)
        self.state = self.mirror.projects[project_id]

    @property
    def seq(self) -> int | None:
        """The seq of the last event printed (or of the snapshot), None before any."""
        return self.state.seq

    async def run(self) -> int:
        """Watch until the project is deleted or the server refuses us; the exit code."""
        while True:
            code: int | None = None
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    compression=None,
                    proxy=None,
                    open_timeout=10,
                ) as ws:
                    result = await self._follow(ws)
                    if result is not None:
                        return result
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                self._note(f"disconnected: {exc}")
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                self._note(f"cannot connect: {exc!r}")
            decision = self.mirror.closed(code)
            if isinstance(decision, Stop):
                self._note(f"refused: {decision.reason} (close {code})")
                return 2
            await asyncio.sleep(decision.delay_s)

    async def _follow(self, ws: ClientConnection) -> int | None:
        """One connection: subscribe (with since once we have a seq) and print frames."""
        retries: set[asyncio.Task[None]] = set()
        try:
            await self._send(ws, self.mirror.resume())
            async for raw in ws:
                message = protocol.decode_server(raw)
                text = raw if isinstance(raw, str) else raw.decode()
                step = self.mirror.receive(message)
                await self._send(ws, step.send)
                for delay_s, frame in step.later:
                    task = asyncio.create_task(self._send_later(ws, delay_s, frame))
                    retries.add(task)
                    task.add_done_callback(retries.discard)
                if step.changed is not None or not isinstance(message, protocol.Event):
                    self._print(message, text, step.changed is not None)
                if self.state.gaps and step.send:
                    after, got = self.state.gaps[-1]
                    self._note(f"gap after seq {after} (got {got}): resubscribing")
                if self.state.ended:
                    return 0 if self.state.last_error is None else 1
            return None
        finally:
            for task in retries:
                task.cancel()

    def _print(self, message: protocol.ServerMessage, raw: str, applied: bool) -> None:
        """One line for a frame that told us something (events only once, in order)."""
        if self.as_json:
            if applied or not isinstance(message, protocol.Event | protocol.JobProgress):
                self.out(raw)
            return
        if isinstance(message, protocol.Snapshot):
            self.out(
                f"snapshot  seq={message.seq} nodes={len(message.nodes)} "
                f"connections={len(message.connections)} jobs={len(message.jobs)}"
            )
        elif isinstance(message, protocol.Subscribed):
            self.out(f"resumed   seq={message.seq}")
        elif isinstance(message, protocol.Event) and applied:
            data = msgspec.json.encode(message.data).decode()
            if len(data) > 160:
                data = data[:157] + "..."
            self.out(f"event     seq={message.seq} {message.kind} {data}")
        elif isinstance(message, protocol.JobProgress) and applied:
            self.out(f"progress  job={message.job_id} {message.progress:.0%}")
        elif isinstance(message, protocol.Unsubscribed):
            self.out("unsubscribed: the project was deleted")
        elif isinstance(message, protocol.Error):
            self.out(f"error     {message.code}: {message.message}")

    async def _send(self, ws: ClientConnection, frames: list[protocol.ClientMessage]) -> None:
        for frame in frames:
            await ws.send(protocol.encode(frame))

    async def _send_later(
        self, ws: ClientConnection, delay_s: float, frame: protocol.ClientMessage
    ) -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._send(ws, [frame])

    def _note(self, line: str) -> None:
        print(f"canvasflow watch: {line}", file=sys.stderr, flush=True)


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
