"""3. Saturation: N clients on one project; raise the event rate step by step until the
delivery p99 passes the limit; report the last rate that held, per web process, with CPU.

Each step also records the CPU of the client processes and of the publisher, so a reader
can tell whether the web process or the load generators ran out first (2 cores, shared).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.broadcast import phase
from bench.clients import processes_for
from bench.plan import Context
from bench.report import Section, fmt, verdict
from bench.scene import hub_scene
from bench.services import CpuWindow, Meter, make_seats


def measure(ctx: Context) -> dict[str, Any]:
    """Step through sizes.saturation_rates until p99 passes the target."""
    s, limit_ms = ctx.sizes, ctx.targets.saturation_p99_ms
    n = s.saturation_clients
    seat = asyncio.run(make_seats(ctx.services.database_url, 1))[0]
    steps: list[dict[str, Any]] = []
    with hub_scene(ctx, [(seat.project_id, seat.token)] * n, processes_for(n)) as (
        web,
        publisher,
        pool,
    ):
        web_meter = Meter(web.pid)
        assert publisher.proc.pid is not None
        publisher_meter = Meter(publisher.proc.pid)
        target = [(seat.project_id, seat.node_id)]

        def send(r: float | None, c: int) -> dict[str, Any]:
            return publisher.changes(target, r, c, s.saturation_step_s * 3 + 10)

        phase(pool, web_meter, send, None, 3)  # warm up
        for rate in s.saturation_rates:
            count = max(5, round(rate * s.saturation_step_s))
            # phase() splits web / clients / machine CPU; the publisher's is added here
            with CpuWindow(publisher_meter) as pub_window:
                step = phase(
                    pool, web_meter, send, rate, count, ctx.profile_path(f"saturation-{rate:g}")
                )
            step["publisher_cpu_percent"] = round(pub_window.percent, 1)
            steps.append(step)
            lost = step["frames_expected"] - step["frames_received"]
            if step["latency"]["p99_ms"] > limit_ms or lost:
                break
    held = [
        st
        for st in steps
        if st["latency"]["p99_ms"] <= limit_ms and st["frames_expected"] == st["frames_received"]
    ]
    return {"clients": n, "steps": steps, "best": held[-1] if held else None}


def run(ctx: Context) -> Section:
    """The saturation steps and the best rate that held."""
    section = ctx.hub_section("3 saturation")
    if section.skipped:
        return section
    figures = measure(ctx)
    section.figures.update(figures)
    n = figures["clients"]
    for st in figures["steps"]:
        lat = st["latency"]
        section.row(
            f"N={n} @{st['rate_per_s']:g} ev/s",
            f"p99 {fmt(lat['p99_ms'])} ms, {fmt(st['delivered_frames_per_s'])} frames/s, "
            f"web {fmt(st['server_cpu_percent'])} % CPU, clients "
            f"{fmt(st['clients_cpu_percent'])} %, machine {fmt(st['machine_busy_percent'])} %"
            + (
                f" (publisher reached only {fmt(st['achieved_events_per_s'])} ev/s)"
                if st["achieved_events_per_s"] < 0.95 * st["rate_per_s"]
                else ""
            ),
        )
    best = figures["best"]
    limit = ctx.targets.saturation_p99_ms
    section.row(
        "events/s per web process at p99 <= limit",
        "-"
        if best is None
        else f"{fmt(best['rate_per_s'])} ev/s = {fmt(best['delivered_frames_per_s'])} frames/s "
        f"at {fmt(best['server_cpu_percent'])} % CPU",
        "",
        f"p99 <= {limit:g} ms",
        verdict(best is not None),
    )
    if best is not None and best is figures["steps"][-1]:
        section.row("note", "the last step still held: raise sizes.saturation_rates")
    return section
