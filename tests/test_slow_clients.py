"""Slow and greedy clients (F6): header and body read timeouts and the connection limit.

The servers here run with `uvicorn_options`, as `canvasflow web` does, with
short timeouts so a slowloris socket is dropped within a test's patience.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from common import protocol
from tests.support.accounts import sign_up
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.ws import WsClient

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5


def _server(services: Services, **overrides: object) -> ServerThread:
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        **overrides,
    )
    return ServerThread(settings, port)


@pytest.fixture
def slow_server(services: Services) -> Iterator[ServerThread]:
    """A server with half-second header and body timeouts."""
    with _server(services, header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S) as srv:
        yield srv


async def read_until_closed(reader: asyncio.StreamReader, within_s: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (fails after `within_s`)."""
    chunks = []
    async with asyncio.timeout(within_s):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_half_sent_headers_are_dropped(slow_server: ServerThread) -> None:
    """A socket dripping header lines, or sending nothing, is closed after the header timeout."""
    port = slow_server.port
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

    async def drip() -> None:
        # a header line every 0.1 s: each byte arrives long before any idle timeout would fire
        while not writer.is_closing():
            writer.write(b"X-Slow: 1\r\n")
            await asyncio.sleep(0.1)

    dripping = asyncio.create_task(drip())
    try:
        # closed at all proves it: a deadline that each dripped line pushed back never comes
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"request_timeout"' in answer
        assert await read_until_closed(idle_reader) == b""
    finally:
        dripping.cancel()
        writer.close()
        idle_writer.close()


async def test_a_stalled_body_is_408_and_closed(slow_server: ServerThread) -> None:
    """A body that stops arriving gets 408 `body_timeout` and its connection is closed."""
    async with httpx.AsyncClient(base_url=slow_server.base_url) as c:
        alice = await sign_up(c)
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
    writer.write(
        (
            "POST /api/projects HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {alice.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            '{"name": "slo'
        ).encode()
    )
    try:
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"body_timeout"' in answer
    finally:
        writer.close()


async def test_keep_alive_requests_and_websockets_outlive_the_header_timeout(
    slow_server: ServerThread,
) -> None:
    """A connection whose requests are complete, and an upgraded websocket, are not dropped."""
    async with httpx.AsyncClient(base_url=slow_server.base_url) as c:
        alice = await sign_up(c)
        ws = await WsClient.open(slow_server.base_url, alice.token)
        try:
            for _ in range(3):
                # each round waits past the header timeout on purpose: that is what is tested
                await asyncio.sleep(HEADER_TIMEOUT_S * 1.5)
                await ws.send({"type": "ping"})
                await ws.expect(protocol.Pong)
            r = await c.get("/api/auth/me", headers=alice.headers)
            assert r.status_code == 200
        finally:
            await ws.close()


async def test_connections_past_the_limit_are_refused_with_503(services: Services) -> None:
    """Past max_connections a new connection gets 503 at once; a freed slot serves again."""
    with _server(services, max_connections=4, header_timeout_s=30.0) as srv:
        held = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(4)]
        try:
            # the server counts a connection when it accepts it: wait until all four are in
            async with asyncio.timeout(10):
                while True:
                    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = await read_until_closed(reader)
                    writer.close()
                    if not answer.startswith(b"HTTP/1.1 200"):
                        break
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b'"unavailable"' in answer and b"retry-after: 1" in answer
        finally:
            for _, writer in held:
                writer.close()
        async with httpx.AsyncClient(base_url=srv.base_url) as c, asyncio.timeout(10):
            while True:
                try:
                    r = await c.get("/healthz")
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    break


async def test_oversized_headers_are_431(slow_server: ServerThread) -> None:
    """Headers over 64 KiB get 431 and a close; 30 KiB of headers are served."""
    async with httpx.AsyncClient(base_url=slow_server.base_url) as c:
        r = await c.get("/healthz", headers={"X-Big": "a" * 30_000})
        assert r.status_code == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(20):
            writer.write(f"X-Big-{i}: {'a' * 5000}\r\n".encode())
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b'"headers_too_large"' in answer
    finally:
        writer.close()
