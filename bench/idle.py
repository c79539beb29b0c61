"""4. Idle capacity: hold N idle, subscribed connections (one project each, as open tabs);
RSS per connection and idle CPU of the web process.

Each N gets a fresh web process, warmed by one subscribed connection so lazily imported
code and the first pool connections are in the baseline; RSS per connection is
(RSS with N - baseline) / N once the connections settled. Clients connect at a gentle,
bounded pace (this is not the storm: 5. is), so the figure is memory, not a queue.

The limit beside it is the bare `websockets` server (bench/bare.py) holding the same
clients; the floor of canvasflow's own stack — uvicorn + Starlette with the same
websocket options and an endpoint that only reads (bench/bare_asgi.py) — is shown too.

Then the connect storm: N clients connecting 40 at a time (the idle run above) and all
N at once, against a fresh web process, every one of them subscribing; the time until
all are subscribed is reported beside the bare server's time until all are connected,
with every refusal (closes with 1013, `unavailable` answers) counted.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any

from bench.bare import BareServer
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
    ctx: Context,
    server: Any,
    n: int,
    seats: list[Seat],
    profile: Path | None = None,
    concurrency: int = CONNECT_CONCURRENCY,
    idle: bool = True,
) -> dict[str, Any]:
    """One fresh server process (canvasflow or the floor) holding `n` idle clients, which
    connect `concurrency` at a time (without `idle`: only how long they took)."""
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
            connect_concurrency=concurrency,
            backoff=ctx.backoff,
        ) as pool:
            connect_s = time.monotonic() - t0
            prof: dict[str, Any] = {}
            cpu = None
            if idle:
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
        "idle_cpu_percent": round(cpu.percent, 2) if cpu else None,
        "connect_concurrency": concurrency,
        "errors": status["errors"],
        **({"profile": prof} if prof else {}),
    }


def measure_bare(ctx: Context, n: int, concurrency: int) -> dict[str, Any]:
    """The bare websockets server holding `n` idle clients (RSS per connection, and how
    long they took to connect `concurrency` at a time)."""
    settle_s = ctx.sizes.idle_settle_s
    with BareServer(free_port()) as bare:
        meter = Meter(bare.pid)
        with ClientPool(bare.url, [("", "")], 1, subscribe=False):
            time.sleep(settle_s)
            baseline = meter.rss_bytes()
        t0 = time.monotonic()
        with ClientPool(
            bare.url,
            [("", "")] * n,
            processes_for(n),
            subscribe=False,
            connect_timeout_s=ctx.sizes.connect_timeout_s,
            connect_concurrency=concurrency,
        ):
            connect_s = time.monotonic() - t0
            time.sleep(settle_s)
            rss = meter.rss_bytes()
            held = bare.count()
    return {
        "clients": n,
        "connected": held,
        "connect_s": round(connect_s, 1),
        "rss_per_connection_kb": round((rss - baseline) / max(1, held) / 1024, 1),
        "connect_concurrency": concurrency,
    }


def _refusals(figures: dict[str, Any]) -> int:
    """Closes with 1013 and `unavailable` answers among a run's client errors."""
    errors = figures.get("errors") or {}
    return int(errors.get("closed:1013", 0)) + int(errors.get("frame:unavailable", 0))


def run(ctx: Context) -> Section:
    """Each N of sizes.idle_clients: canvasflow, then the floor."""
    section = ctx.hub_section("4 idle")
    if section.skipped:
        return section
    biggest = max(ctx.sizes.idle_clients)
    seats = asyncio.run(make_seats(ctx.services.database_url, biggest, users=max(1, biggest // 10)))
    limit_kb = ctx.targets.idle_rss_per_conn_kb
    ratio = ctx.targets.idle_rss_over_bare
    for n in ctx.sizes.idle_clients:
        cf = measure(ctx, ctx.web(), n, seats, ctx.profile_path(f"idle-n{n}"))
        floor = measure(ctx, FloorProc(ctx), n, seats)
        bare = (
            measure_bare(ctx, n, CONNECT_CONCURRENCY)
            if ctx.sizes.idle_storm
            else {"rss_per_connection_kb": float("nan"), "connect_s": float("nan")}
        )
        figures = {"canvasflow": cf, "bare": bare, "floor": floor}
        storms = [(f"{CONNECT_CONCURRENCY} at a time", cf, bare)]
        if ctx.sizes.idle_storm:
            figures["storm"] = measure(ctx, ctx.web(), n, seats, concurrency=n, idle=False)
            figures["bare_storm"] = measure_bare(ctx, n, n)
            storms.append(("all at once", figures["storm"], figures["bare_storm"]))
        section.figures[f"n={n}"] = figures
        # without the bare server's figure (a run without the storm) there is no ratio
        measured_bare = not math.isnan(bare["rss_per_connection_kb"])
        graded = (n >= 5000 or n == biggest) and measured_bare
        per_conn, bare_kb = cf["rss_per_connection_kb"], bare["rss_per_connection_kb"]
        section.row(
            f"N={n} RSS per connection",
            f"{fmt(per_conn)} KB ({cf['subscribed']} held"
            + (f"; {per_conn / max(0.1, bare_kb):.2f}x)" if measured_bare else ")"),
            f"bare {fmt(bare_kb)} KB; stack floor {fmt(floor['rss_per_connection_kb'])} KB",
            f"<= {limit_kb:g} KB, <= {ratio:g}x bare" if graded else "",
            verdict(per_conn <= limit_kb and per_conn <= ratio * bare_kb and cf["subscribed"] == n)
            if graded
            else "",
        )
        section.row(
            f"N={n} idle web CPU",
            f"{fmt(cf['idle_cpu_percent'], digits=2)} %",
            f"{fmt(floor['idle_cpu_percent'], digits=2)} % (stack floor)",
        )
        for label, ours, theirs in storms:
            refused = _refusals(ours)
            section.row(
                f"N={n} storm, {label}",
                f"all subscribed in {fmt(ours['connect_and_subscribe_s'])} s "
                f"({ours['subscribed']}/{n}; {refused} refused)",
                f"bare: all connected in {fmt(theirs['connect_s'])} s",
                "every one subscribed, 0 refused",
                verdict(ours["subscribed"] == n and refused == 0),
            )
    return section
