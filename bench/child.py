"""The one life cycle of the bench's helper processes (bare server, publisher, client
processes): spawned with a pipe, ready when their first message arrives, told to stop over
the pipe and killed if they do not; inside the child, the pipe's commands as an asyncio queue."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Self


class Child:
    """A spawned process that talks over a pipe; a context manager so it always ends."""

    #: what the process is called in errors
    name = "child"

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child), daemon=True)

    @property
    def pid(self) -> int:
        """The process's id."""
        assert self.proc.pid is not None
        return self.proc.pid

    def ask(self, command: tuple[Any, ...], expect: str, timeout_s: float) -> Any:
        """Send `command`, wait for the `(expect, body)` answer and return its body."""
        self.conn.send(command)
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"{self.name} did not answer {command[0]!r} in {timeout_s} s")
        kind, body = self.conn.recv()
        assert kind == expect, (kind, expect)
        return body

    def __enter__(self) -> Self:
        self.proc.start()
        if not self.conn.poll(30):
            self.proc.kill()
            raise TimeoutError(f"{self.name} did not start")
        self.conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def command_queue(conn: Connection) -> asyncio.Queue[Any]:
    """In the child: the parent's commands as they arrive, ending with ("stop",) — sent by
    the parent or made up when the pipe breaks. A thread reads, because recv blocks."""
    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_commands() -> None:
        while True:
            try:
                item = conn.recv()
            except (EOFError, OSError):
                item = ("stop",)
            loop.call_soon_threadsafe(commands.put_nowait, item)
            if item[0] == "stop":
                return

    threading.Thread(target=read_commands, daemon=True).start()
    return commands
