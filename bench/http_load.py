"""HTTP load: closed-loop asyncio clients (httpx, keep-alive) in several processes."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request: path, bearer token, JSON body."""

    path: str
    token: str
    body: dict[str, Any]


async def _load(
    base_url: str, calls: list[Call], concurrency: int, budget_s: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: list[Any] = []
    next_i = 0
    t0 = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30, trust_env=False
    ) as client:

        async def one_worker() -> None:
            nonlocal next_i
            while next_i < len(calls) and time.monotonic() - t0 < budget_s:
                call = calls[next_i]
                next_i += 1
                start = time.monotonic()
                try:
                    r = await client.post(
                        call.path, json=call.body, headers={"Authorization": f"Bearer {call.token}"}
                    )
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                latencies.append(time.monotonic() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 202 and len(bodies) < 5:
                    bodies.append(r.text[:300] if status else "transport error")

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
