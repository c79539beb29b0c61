"""The LIMIT of broadcast: a bare `websockets` server sending the same frames to the same
clients, with nothing between the event and the sockets (no Redis, no Postgres, no hub).

It runs in its own process on uvloop, as the web process does, so its CPU is measured the
same way; the bench drives it over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.child import Child, command_queue
from bench.payload import node_updated_frame, restamp

HARD_LIMIT_S = 900.0


async def _serve(port: int, conn: Connection) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    commands = command_queue(conn)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        backlog=4096,
    ):
        conn.send(("listening", port))
        deadline = time.monotonic() + HARD_LIMIT_S
        while time.monotonic() < deadline:
            try:
                command = await asyncio.wait_for(commands.get(), 5)
            except TimeoutError:
                continue
            if command[0] == "count":
                conn.send(("count", len(clients)))
            elif command[0] == "send":
                _, rate, count, template = command
                conn.send(("sent", await _send(clients, broadcast, rate, count, template)))
            elif command[0] == "stop":
                break
        for ws in list(clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)


#: the bare "project"'s seq: consecutive across sends, as a hub's would be
_seq = [0]


async def _send(
    clients: set[Any],
    broadcast: Any,
    rate: float | None,
    count: int,
    template: dict[str, Any] | None,
) -> dict[str, Any]:
    """Broadcast `count` stamped frames at `rate` per second (None: back to back); shaped as
    `template` (a frame the hub sent) when given."""
    project_id = "00000000-0000-0000-0000-00000000b0b0"
    t0 = time.monotonic()
    for i in range(count):
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        # encoded once per event, as the hub does: broadcast() copies it to every socket
        _seq[0] += 1
        t = time.monotonic()
        if template is None:
            frame = node_updated_frame(project_id, _seq[0], t)
        else:
            frame = restamp(template, _seq[0], t)
        broadcast(clients, frame, text=True)
        if not rate:
            # let the loop flush writes between rounds, as a server with other work would
            await asyncio.sleep(0)
    return {"first": t0, "last": time.monotonic(), "count": count}


def bare_server_main(port: int, conn: Connection) -> None:
    """Entry point of the bare server process (spawned)."""
    from bench.services import raise_open_files_limit

    raise_open_files_limit()
    try:
        import uvloop

        uvloop.run(_serve(port, conn))
    except ImportError:
        asyncio.run(_serve(port, conn))


class BareServer(Child):
    """The bare server process; a context manager so it always ends."""

    name = "bare server"

    def __init__(self, port: int) -> None:
        super().__init__(bare_server_main, port)
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"

    def count(self) -> int:
        """Open connections now."""
        return int(self.ask(("count",), "count", 10))

    def send(
        self,
        rate: float | None,
        count: int,
        timeout_s: float,
        template: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Broadcast `count` frames at `rate`; returns when the last one is written."""
        result: dict[str, Any] = self.ask(("send", rate, count, template), "sent", timeout_s)
        return result
