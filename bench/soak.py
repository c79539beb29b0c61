"""`python -m bench.soak`: a bounded soak of a real web process and worker (issue 13, F1).

For `--duration-s` (300 by default; `--short` is 30) it keeps up, all at once:

- churning websocket clients: each connects, subscribes to its project and
  then at random unsubscribes 0-15 ms later (and subscribes again), drops the
  connection 0-15 ms after subscribing (a clean close or a cut TCP stream), or
  waits for its snapshot and leaves; then it reconnects;
- REST editors moving nodes (PATCH) and listing projects;
- a job submitter (generate-video, some cancelled at once) that the worker renders.

Then, with the load stopped, it reports beside each limit: Postgres sessions of
the run's database still busy or `idle in transaction` (leaked: 0), the web
process's RSS after a warm-up and at the end (flat), 5xx answers and failed
/healthz probes (0), and how long another user's REST call took at the end.
Exit status 1 when a figure is over its limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import websockets
from websockets.asyncio.client import connect

from bench.services import (
    ROOT,
    Meter,
    Seat,
    Services,
    WebProc,
    WorkerProc,
    fresh_services,
    make_seats,
    raise_open_files_limit,
)

MIB = 1 << 20
#: RSS may grow this much from the warmed-up figure to the end and still count as flat
RSS_GROWTH_LIMIT_BYTES = 24 * MIB
#: the hub's default budget is 20 frames/s a connection: the churn stays under it
FRAME_GAP_S = 0.06


@dataclass
class Tally:
    """What the load saw."""

    http: Counter[int] = field(default_factory=Counter)
    http_errors: Counter[str] = field(default_factory=Counter)
    ws_closes: Counter[int] = field(default_factory=Counter)
    ws_errors: Counter[str] = field(default_factory=Counter)
    churn: Counter[str] = field(default_factory=Counter)
    healthz: Counter[int] = field(default_factory=Counter)
    jobs_submitted: int = 0

    def status(self, code: int) -> None:
        """Count one HTTP answer."""
        self.http[code] += 1

    @property
    def server_errors(self) -> int:
        """HTTP answers 500 and above."""
        return sum(n for code, n in self.http.items() if code >= 500)


async def ws_client(url: str, seat: Seat, tally: Tally, stop: asyncio.Event, seed: int) -> None:
    """One churning client: connect, subscribe, unsubscribe/drop/leave, reconnect, until stop."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {seat.token}"}
    subscribe = json.dumps({"type": "subscribe", "project_id": seat.project_id})
    unsubscribe = json.dumps({"type": "unsubscribe", "project_id": seat.project_id})
    while not stop.is_set():
        try:
            async with connect(
                url, additional_headers=headers, compression=None, proxy=None, open_timeout=20
            ) as ws:
                reader = asyncio.create_task(_read(ws, tally))
                try:
                    await ws.send(subscribe)
                    way = rng.random()
                    if way < 0.5:
                        # unsubscribe 0-15 ms later, a few times over: the finding's recipe
                        for _ in range(rng.randint(1, 6)):
                            await asyncio.sleep(rng.uniform(0, 0.015))
                            await ws.send(unsubscribe)
                            tally.churn["unsubscribe"] += 1
                            await asyncio.sleep(FRAME_GAP_S)
                            await ws.send(subscribe)
                            await asyncio.sleep(FRAME_GAP_S)
                    elif way < 0.8:
                        await asyncio.sleep(rng.uniform(0, 0.015))
                        if rng.random() < 0.5:
                            ws.transport.abort()  # the network goes: no close frame
                            tally.churn["cut"] += 1
                        else:
                            tally.churn["close"] += 1
                        continue
                    else:
                        await asyncio.sleep(rng.uniform(0.05, 1.0))
                        tally.churn["stay"] += 1
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        except websockets.ConnectionClosed as exc:
            tally.ws_closes[exc.rcvd.code if exc.rcvd else 1006] += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            tally.ws_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
        await asyncio.sleep(rng.uniform(0, 0.05))


async def _read(ws: Any, tally: Tally) -> None:
    """Read a client's frames, counting error frames and close codes."""
    try:
        async for raw in ws:
            if '"type":"error"' in raw:
                code = json.loads(raw).get("code", "?")
                tally.ws_errors[f"error frame {code}"] += 1
    except websockets.ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
            tally.ws_closes[exc.rcvd.code] += 1


async def editor(base_url: str, seats: list[Seat], tally: Tally, stop: asyncio.Event) -> None:
    """Move nodes and list projects, about 10 requests a second."""
    rng = random.Random(len(seats))
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while not stop.is_set():
            seat = rng.choice(seats)
            headers = {"Authorization": f"Bearer {seat.token}"}
            try:
                if rng.random() < 0.7:
                    r = await http.patch(
                        f"/api/nodes/{seat.node_id}",
                        json={"x": rng.uniform(0, 1000), "y": rng.uniform(0, 1000)},
                        headers=headers,
                    )
                else:
                    r = await http.get("/api/projects", headers=headers)
                tally.status(r.status_code)
            except httpx.HTTPError as exc:
                tally.http_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.1)


async def submitter(
    base_url: str, videos: list[tuple[str, str]], tally: Tally, stop: asyncio.Event
) -> None:
    """A generate-video every ~4 s on a video node; one in four is cancelled at once."""
    rng = random.Random(4)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while not stop.is_set():
            node_id, token = rng.choice(videos)
            headers = {"Authorization": f"Bearer {token}"}
            body = {
                "node_id": node_id,
                "prompt": "a soak: a red ball rolling",
                "resolution": "720p",
                "duration": 4,
                "aspect_ratio": "16:9",
            }
            try:
                r = await http.post("/api/ai/generate-video", json=body, headers=headers)
                tally.status(r.status_code)
                if r.status_code == 202:
                    tally.jobs_submitted += 1
                    if rng.random() < 0.25:
                        c = await http.post(
                            f"/api/ai/jobs/{r.json()['job_id']}/cancel", headers=headers
                        )
                        tally.status(c.status_code)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                tally.http_errors[type(exc).__name__] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(3, 5))


async def prober(base_url: str, tally: Tally, stop: asyncio.Event) -> None:
    """GET /healthz once a second, as an orchestrator would."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while not stop.is_set():
            try:
                tally.healthz[(await http.get("/healthz")).status_code] += 1
            except httpx.HTTPError:
                tally.healthz[0] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def busy_sessions(services: Services) -> list[dict[str, Any]]:
    """Sessions of the run's database in a transaction or running a query (not this one)."""
    conn = await asyncpg.connect(services.database_url)
    try:
        rows = await conn.fetch(
            "SELECT state, left(query, 70) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def quiet_sessions(services: Services, timeout_s: float) -> list[dict[str, Any]]:
    """Busy sessions once the load is gone: waits up to `timeout_s` for them to go idle."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy = await busy_sessions(services)
        if not busy or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(0.2)


async def make_videos(services: Services, seats: list[Seat]) -> list[tuple[str, str]]:
    """One video node in each seat's project: (node id, owner's token)."""
    conn = await asyncpg.connect(services.database_url)
    try:
        rows = await conn.fetch(
            "INSERT INTO nodes (project_id, type) SELECT p, 'video' FROM unnest($1::uuid[]) p "
            "RETURNING id::text, project_id::text",
            [s.project_id for s in seats],
        )
    finally:
        await conn.close()
    token = {s.project_id: s.token for s in seats}
    return [(r["id"], token[r["project_id"]]) for r in rows]


async def soak(services: Services, web: WebProc, duration_s: float, clients: int) -> dict[str, Any]:
    """Run the load for `duration_s`, then measure what it left behind."""
    seats = await make_seats(services.database_url, projects=max(clients, 20))
    videos = await make_videos(services, seats[:10])
    meter = Meter(web.pid)
    tally = Tally()
    stop = asyncio.Event()
    rss_start = meter.rss_bytes()
    tasks = [
        asyncio.create_task(ws_client(web.ws_url, seats[i % len(seats)], tally, stop, i))
        for i in range(clients)
    ]
    tasks += [asyncio.create_task(editor(web.base_url, seats, tally, stop)) for _ in range(3)]
    tasks.append(asyncio.create_task(submitter(web.base_url, videos, tally, stop)))
    tasks.append(asyncio.create_task(prober(web.base_url, tally, stop)))
    # the warmed-up figure: caches, the pool and the hub's structures are grown by now
    warmup_s = min(30.0, duration_s / 5)
    await asyncio.sleep(warmup_s)
    rss_warm = meter.rss_bytes()
    await asyncio.sleep(duration_s - warmup_s)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            tally.http_errors[f"load task died: {outcome!r}"] += 1
    leaked = await quiet_sessions(services, timeout_s=10)
    async with httpx.AsyncClient(base_url=web.base_url, timeout=30) as http:
        started = time.monotonic()
        r = await http.get("/api/projects", headers={"Authorization": f"Bearer {seats[-1].token}"})
        other_s = time.monotonic() - started
        tally.status(r.status_code)
        healthz_end = (await http.get("/healthz")).status_code
    rss_end = meter.rss_bytes()
    return {
        "duration_s": duration_s,
        "clients": clients,
        "leaked_sessions": leaked,
        "rss_start_mib": round(rss_start / MIB, 1),
        "rss_warm_mib": round(rss_warm / MIB, 1),
        "rss_end_mib": round(rss_end / MIB, 1),
        "rss_growth_mib": round((rss_end - rss_warm) / MIB, 1),
        "http": dict(sorted(tally.http.items())),
        "http_errors": dict(tally.http_errors),
        "server_errors": tally.server_errors,
        "healthz": dict(tally.healthz),
        "healthz_end": healthz_end,
        "ws_closes": dict(tally.ws_closes),
        "ws_errors": dict(tally.ws_errors),
        "churn": dict(tally.churn),
        "jobs_submitted": tally.jobs_submitted,
        "other_user_rest_s": round(other_s, 3),
        "other_user_rest_status": r.status_code,
    }


def verdicts(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(figure, value, limit, within) for each graded figure."""
    failed_probes = sum(n for code, n in result["healthz"].items() if code != 200)
    return [
        ("leaked Postgres sessions", str(len(result["leaked_sessions"])), "0",
         not result["leaked_sessions"]),
        ("web RSS warm -> end", f"{result['rss_warm_mib']} -> {result['rss_end_mib']} MiB "
         f"({result['rss_growth_mib']:+} MiB)", f"<= +{RSS_GROWTH_LIMIT_BYTES // MIB} MiB",
         result["rss_growth_mib"] * MIB <= RSS_GROWTH_LIMIT_BYTES),
        ("HTTP 5xx answers", str(result["server_errors"]), "0", result["server_errors"] == 0),
        ("/healthz not 200", str(failed_probes), "0", failed_probes == 0),
        ("other user's REST call at the end",
         f"{result['other_user_rest_status']} in {result['other_user_rest_s']} s", "200",
         result["other_user_rest_status"] == 200),
    ]  # fmt: skip


def report(result: dict[str, Any]) -> bool:
    """Print the figures beside their limits; True when all are within."""
    rows = verdicts(result)
    print(f"soak: {result['duration_s']:.0f} s, {result['clients']} churning websocket clients, "
          f"3 REST editors, {result['jobs_submitted']} jobs submitted")  # fmt: skip
    print(f"  churn: {result['churn']}")
    print(f"  HTTP answers: {result['http']}  transport errors: {result['http_errors']}")
    print(f"  websocket closes: {result['ws_closes']}  errors: {result['ws_errors']}")
    print(f"  web RSS at start {result['rss_start_mib']} MiB (before warm-up)")
    print(f"  {'figure':36} {'value':34} {'limit':14} verdict")
    for name, value, limit, ok in rows:
        print(f"  {name:36} {value:34} {limit:14} {'PASS' if ok else 'FAIL'}")
    for s in result["leaked_sessions"]:
        print(f"  leaked: {s['state']}: {s['query']}")
    return all(ok for *_, ok in rows)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the services and processes, soak, report."""
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--duration-s", type=float, default=300.0, help="how long the load runs")
    p.add_argument("--short", action="store_true", help="30 s instead of --duration-s")
    p.add_argument("--clients", type=int, default=100, help="churning websocket clients")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    p.add_argument("--json", type=str, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    duration_s = 30.0 if args.short else args.duration_s
    admin_url, redis_url = args.database_url, args.redis_url
    if not admin_url or not redis_url:
        from server import embedded

        data_dir = ROOT / ".data" / "bench"
        admin_url = admin_url or embedded.start_postgres(data_dir)
        redis_url = redis_url or embedded.start_redis(data_dir)
    raise_open_files_limit()
    with fresh_services(admin_url, redis_url) as services:
        web = WebProc(services).start()
        # two jobs at a time: the renders must not starve the web process of the 2 cores
        worker = WorkerProc(services, CANVASFLOW_WORKER_MAX_JOBS="2").start()
        try:
            web.wait_ready()
            result = asyncio.run(soak(services, web, duration_s, args.clients))
        finally:
            web.stop()
            worker.stop()
    ok = report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
