"""A TCP proxy in front of Redis that drops the connection at a chosen command.

It reads the RESP commands a client sends and forwards them one by one. A
`Drop` rule names a command (and, optionally, the start of its first key);
when the rule's n-th match arrives, the proxy closes both sides without
forwarding it, as a Redis restart or a broken network would, and may then
refuse the next connection attempts (a server still down). Faults are thus
injected at an exact point of a client's protocol, every run the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Self


@dataclass
class Drop:
    """Drop the connection at the `nth` command `name` whose first argument starts with `key`."""

    name: str
    key: str = ""
    #: only while the connection WATCHes a key (between WATCH and EXEC / UNWATCH / DISCARD)
    watching: bool = False
    nth: int = 1
    #: connection attempts refused after the drop (the server is still away)
    refuse: int = 0
    seen: int = 0
    #: set once the drop happened
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, command: list[bytes], watching: bool) -> bool:
        """Whether `command`, sent while `watching` or not, is the one to drop at (counting)."""
        if self.done.is_set() or command[0].decode().upper() != self.name:
            return False
        if self.watching and not watching:
            return False
        if self.key and (len(command) < 2 or not command[1].decode().startswith(self.key)):
            return False
        self.seen += 1
        return self.seen == self.nth


def _parse(buf: bytearray) -> tuple[list[bytes], int] | None:
    """One RESP array of bulk strings from the start of `buf` and its length, or None if partial."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    if buf[:1] != b"*":
        raise ValueError(f"not a RESP command: {bytes(buf[:20])!r}")
    count = int(buf[1:end])
    pos = end + 2
    args: list[bytes] = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(buf[pos + 1 : end])
        start = end + 2
        if len(buf) < start + size + 2:
            return None
        args.append(bytes(buf[start : start + size]))
        pos = start + size + 2
    return args, pos


class RedisProxy:
    """127.0.0.1:port → Redis at `upstream_port`, with drop rules applied to client commands."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rules: list[Drop] = []
        self.commands: list[str] = []
        self._refusing = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """The proxy's Redis URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    def drop(self, rule: Drop) -> Drop:
        """Add a rule; returns it (await `rule.done.wait()` for the drop)."""
        self.rules.append(rule)
        return rule

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing > 0:
            self._refusing -= 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        back = asyncio.create_task(self._pump_back(up_reader, writer))
        try:
            await self._pump_commands(reader, up_writer)
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await back

    async def _pump_commands(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        buf = bytearray()
        watching = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk
            while (parsed := _parse(buf)) is not None:
                command, size = parsed
                name = command[0].decode().upper()
                for rule in self.rules:
                    if rule.matches(command, watching):
                        self._refusing = rule.refuse
                        rule.done.set()
                        return  # the caller aborts both sides: this command never arrives
                if name == "WATCH":
                    watching = True
                elif name in ("EXEC", "UNWATCH", "DISCARD"):
                    watching = False
                self.commands.append(name)
                upstream.write(bytes(buf[:size]))
                del buf[:size]
            await upstream.drain()

    async def _pump_back(
        self, upstream: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while chunk := await upstream.read(65536):
            writer.write(chunk)
            await writer.drain()
        # Redis closed its side: so does the proxy, and the client sees the drop
        writer.transport.abort()
