"""HTTP load: closed-loop asyncio clients (keep-alive HTTP/1.1) in several processes.

The client speaks just enough HTTP/1.1 over asyncio streams for a JSON POST and
its answer: the load shares the server's CPU, and httpx spent about as much
CPU per request as the web process it measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Call:
    """One request: path, bearer token, JSON body."""

    path: str
    token: str
    body: dict[str, Any]


class _Connection:
    """One keep-alive HTTP/1.1 connection: POST JSON, read status and body."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, call: Call) -> tuple[int, bytes]:
        """Send one request (connecting first if needed); the status and the body."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(call.body).encode()
        head = (
            f"POST {call.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {call.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        answer = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        """Drop the connection (the next post opens another)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(
    base_url: str, calls: list[Call], concurrency: int, budget_s: float
) -> dict[str, Any]:
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: list[Any] = []
    next_i = 0
    t0 = time.monotonic()

    async def one_worker() -> None:
        nonlocal next_i
        conn = _Connection(host, port)
        try:
            while next_i < len(calls) and time.monotonic() - t0 < budget_s:
                call = calls[next_i]
                next_i += 1
                start = time.monotonic()
                try:
                    status, answer = await asyncio.wait_for(conn.post(call), 30)
                except (OSError, EOFError, ValueError, IndexError, TimeoutError) as exc:
                    conn.close()
                    status, answer = 0, repr(exc).encode()
                latencies.append(time.monotonic() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 202 and len(bodies) < 5:
                    bodies.append(answer[:300].decode(errors="replace"))
        finally:
            conn.close()

    await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return {
        "first": t0,
        "last": time.monotonic(),
        "latencies_s": latencies,
        "statuses": statuses,
        "sample_errors": bodies,
    }


def _load_main(
    base_url: str, calls: list[Call], concurrency: int, budget_s: float
) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_load(base_url, calls, concurrency, budget_s))
    except ImportError:
        return asyncio.run(_load(base_url, calls, concurrency, budget_s))


def post_all(
    base_url: str, calls: list[Call], concurrency: int, processes: int, budget_s: float
) -> dict[str, Any]:
    """POST every call with `concurrency` in flight overall, split over `processes`."""
    processes = max(1, min(processes, concurrency, len(calls)))
    per = max(1, concurrency // processes)
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_load_main, base_url, calls[i::processes], per, budget_s)
            for i in range(processes)
        ]
        parts = [f.result(timeout=budget_s + 60) for f in futures]
    statuses: dict[int, int] = {}
    for p in parts:
        for k, v in p["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    latencies = [x for p in parts for x in p["latencies_s"]]
    first = min(p["first"] for p in parts)
    last = max(p["last"] for p in parts)
    return {
        "latencies_s": latencies,
        "statuses": statuses,
        "elapsed_s": last - first,
        "requests_per_s": len(latencies) / (last - first) if last > first else 0.0,
        "sample_errors": [e for p in parts for e in p["sample_errors"]][:5],
        "concurrency": per * processes,
    }
