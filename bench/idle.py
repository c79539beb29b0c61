"""4. Idle capacity: hold N idle, subscribed connections (one project each, as open tabs);
RSS per connection and idle CPU of the web process.

Each N gets a fresh web process, warmed by one subscribed connection so lazily imported
code and the first pool connections are in the baseline; RSS per connection is
(RSS with N - baseline) / N after the connections settled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.clients import ClientPool, processes_for
from bench.plan import Context
from bench.report import Section, fmt, verdict
from bench.services import CpuWindow, Meter, Seat, make_seats


def measure(ctx: Context, n: int, seats: list[Seat]) -> dict[str, Any]:
    """One fresh web process holding `n` idle subscribed clients."""
    web = ctx.web().start()
    try:
        web.wait_ready()
        meter = Meter(web.pid)
        warm = seats[0]
        with ClientPool(web.ws_url, [(warm.project_id, warm.token)], 1):
            time.sleep(ctx.sizes.idle_settle_s)
            baseline = meter.rss_bytes()
        t0 = time.monotonic()
        with ClientPool(
            web.ws_url,
            [(x.project_id, x.token) for x in seats[:n]],
            processes_for(n),
            connect_timeout_s=ctx.sizes.connect_timeout_s,
            backoff=ctx.backoff,
        ) as pool:
            connect_s = time.monotonic() - t0
            time.sleep(ctx.sizes.idle_settle_s)
            with CpuWindow(meter) as cpu:
                time.sleep(ctx.sizes.idle_window_s)
            rss = meter.rss_bytes()
            status = pool.status()
    finally:
        web.stop()
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
    }


def run(ctx: Context) -> Section:
    """Each N of sizes.idle_clients."""
    section = Section("4 idle")
    if not ctx.features.get("hub"):
        section.skipped = "hub (GET /ws) not present yet"
        return section
    biggest = max(ctx.sizes.idle_clients)
    seats = asyncio.run(make_seats(ctx.services.database_url, biggest, users=max(1, biggest // 10)))
    limit_kb = ctx.targets.idle_rss_per_conn_kb
    for n in ctx.sizes.idle_clients:
        f = measure(ctx, n, seats)
        section.figures[f"n={n}"] = f
        graded = n == biggest
        section.row(
            f"N={n} RSS per connection",
            f"{fmt(f['rss_per_connection_kb'])} KB ({f['subscribed']} held)",
            "",
            f"<= {limit_kb:g} KB" if graded else "",
            verdict(f["rss_per_connection_kb"] <= limit_kb and f["subscribed"] == n)
            if graded
            else "",
        )
        section.row(f"N={n} idle web CPU", f"{fmt(f['idle_cpu_percent'], digits=2)} %")
    return section
