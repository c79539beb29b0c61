"""4. Idle capacity: hold N idle, subscribed connections (one project each, as open tabs);
RSS per connection and idle CPU of the web process.

Each N gets a fresh web process, warmed by one subscribed connection so lazily imported
code and the first pool connections are in the baseline; RSS per connection is
(RSS with N - baseline) / N once the connections settled. Clients connect at a gentle,
bounded pace (this is not the storm: 5. is), so the figure is memory, not a queue.

The limit beside it is the floor of the stack: uvicorn + Starlette with the same
websocket options and an endpoint that only reads (bench/bare_asgi.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.clients import ClientPool, processes_for
from bench.plan import Context
from bench.profile import sampled
from bench.report import Section, fmt, verdict
from bench.services import (
    CpuWindow,
    Meter,
    Proc,
    Seat,
    free_port,
    make_seats,
    wait_http_ready,
)

#: connections being opened at once, across client processes
CONNECT_CONCURRENCY = 40


class FloorProc(Proc):
    """bench/bare_asgi.py on a loopback port."""

    def __init__(self, ctx: Context) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        args = [sys.executable, "-m", "bench.bare_asgi", str(self.port)]
        super().__init__(args, ctx.services.env(), "floor")

    def wait_ready(self, timeout_s: float = 30) -> float:
        """Block until /readyz answers."""
        return wait_http_ready(self, self.base_url, timeout_s)


def measure(
    ctx: Context, server: Any, n: int, seats: list[Seat], profile: Path | None = None
) -> dict[str, Any]:
    """One fresh server process (canvasflow or the floor) holding `n` idle clients."""
    settle_s = ctx.sizes.idle_settle_s
    server.start()
    try:
        server.wait_ready()
        meter = Meter(server.pid)
        warm = seats[0]
        with ClientPool(server.ws_url, [(warm.project_id, warm.token)], 1):
            time.sleep(settle_s)
            baseline = meter.rss_bytes()
        t0 = time.monotonic()
        with ClientPool(
            server.ws_url,
            [(x.project_id, x.token) for x in seats[:n]],
            processes_for(n),
            connect_timeout_s=ctx.sizes.connect_timeout_s,
            connect_concurrency=CONNECT_CONCURRENCY,
            backoff=ctx.backoff,
        ) as pool:
            connect_s = time.monotonic() - t0
            time.sleep(settle_s)
            with sampled(server.pid, profile) as prof, CpuWindow(meter) as cpu:
                time.sleep(ctx.sizes.idle_window_s)
            rss = meter.rss_bytes()
            status = pool.status()
    finally:
        server.stop()
    held = status["subscribed"]
    return {
        "clients": n,
        "subscribed": held,
        "connect_and_subscribe_s": round(connect_s, 1),
        "baseline_rss_bytes": baseline,
        "rss_bytes": rss,
        "rss_per_connection_kb": round((rss - baseline) / max(1, held) / 1024, 1),
        "idle_cpu_percent": round(cpu.percent, 2),
        "errors": status["errors"],
        **({"profile": prof} if prof else {}),
    }


def run(ctx: Context) -> Section:
    """Each N of sizes.idle_clients: canvasflow, then the floor."""
    section = Section("4 idle")
    if not ctx.features.get("hub"):
        section.skipped = "hub (GET /ws) not present yet"
        return section
    biggest = max(ctx.sizes.idle_clients)
    seats = asyncio.run(make_seats(ctx.services.database_url, biggest, users=max(1, biggest // 10)))
    limit_kb = ctx.targets.idle_rss_per_conn_kb
    for n in ctx.sizes.idle_clients:
        cf = measure(ctx, ctx.web(), n, seats, ctx.profile_path(f"idle-n{n}"))
        floor = measure(ctx, FloorProc(ctx), n, seats)
        section.figures[f"n={n}"] = {"canvasflow": cf, "floor": floor}
        graded = n == biggest
        section.row(
            f"N={n} RSS per connection",
            f"{fmt(cf['rss_per_connection_kb'])} KB ({cf['subscribed']} held)",
            f"{fmt(floor['rss_per_connection_kb'])} KB (stack floor)",
            f"<= {limit_kb:g} KB" if graded else "",
            verdict(cf["rss_per_connection_kb"] <= limit_kb and cf["subscribed"] == n)
            if graded
            else "",
        )
        section.row(
            f"N={n} idle web CPU",
            f"{fmt(cf['idle_cpu_percent'], digits=2)} %",
            f"{fmt(floor['idle_cpu_percent'], digits=2)} %",
        )
    return section
