"""7. Web processes: the same clients on one project through one web process, then through two
sharing the port (SO_REUSEPORT, as `canvasflow web --reuse-port` and the Procfile run them).

Each setup gets fresh web processes; the kernel spreads the connections over the listening
processes. Bursts of changes go through `publish_change`; the figure is delivered frames per
second (every client's frames, first send to last receive), beside the web processes' CPU,
the client processes' and the whole machine's, and how many clients each process held. On a
machine whose cores also run the clients, a second process can only add deliveries while a
core is idle: the CPU columns say whether one was.
"""

from __future__ import annotations

import asyncio
from statistics import median
from typing import Any

from bench.broadcast import phase
from bench.clients import processes_for
from bench.plan import Context
from bench.report import Section, fmt
from bench.scene import hub_scene
from bench.services import MeterGroup, free_port, make_seats

#: web processes of each setup
SETUPS = (1, 2)


def measure(ctx: Context, n: int, webs: int, seat: Any) -> dict[str, Any]:
    """`n` clients on `seat`'s project through `webs` processes on one port: the bursts."""
    port = free_port()
    procs = [ctx.web(port, reuse_port=True) for _ in range(webs)]
    with hub_scene(
        ctx, [(seat.project_id, seat.token)] * n, processes_for(n), web=procs[0], also=procs[1:]
    ) as (_, publisher, pool):
        meter = MeterGroup([p.pid for p in procs])
        held = meter.connections(port)
        budget = ctx.sizes.broadcast_seconds * 3 + 30
        target = [(seat.project_id, seat.node_id)]

        def send(rate: float | None, count: int) -> dict[str, Any]:
            return publisher.changes(target, rate, count, budget)

        burst = max(ctx.sizes.broadcast_min_burst, ctx.sizes.broadcast_burst_frames // n)
        phase(pool, meter, send, None, 3)  # warm up
        bursts = [phase(pool, meter, send, None, burst) for _ in range(ctx.sizes.broadcast_repeats)]
        return {
            "web_processes": webs,
            "subscribed": pool.ready["subscribed"],
            "clients_per_process": held,
            "bursts": bursts,
            "delivered_frames_per_s": median(b["delivered_frames_per_s"] or 0 for b in bursts),
        }


def run(ctx: Context) -> Section:
    """One web process, then two, with the same clients and the same bursts."""
    section = ctx.hub_section("7 processes")
    if section.skipped:
        return section
    n = ctx.sizes.processes_clients
    seat = asyncio.run(make_seats(ctx.services.database_url, 1))[0]
    one: float | None = None
    for webs in SETUPS:
        m = measure(ctx, n, webs, seat)
        section.figures[f"webs={webs}"] = m
        rate = m["delivered_frames_per_s"]
        one = one or rate
        mid = sorted(m["bursts"], key=lambda b: b["delivered_frames_per_s"] or 0)[
            len(m["bursts"]) // 2
        ]
        lost = sum(b["frames_expected"] - b["frames_received"] + b["gaps"] for b in m["bursts"])
        section.row(
            f"N={n} delivered frames/s, {webs} web process{'es' if webs > 1 else ''}",
            f"{fmt(rate)} ({rate / max(1e-9, one):.2f}x one; clients per process "
            f"{'/'.join(map(str, m['clients_per_process']))}"
            + (f"; {lost} missing or out of order" if lost else "")
            + ")",
            "CPU web/clients/machine "
            + "/".join(
                fmt(mid[k], digits=0)
                for k in ("server_cpu_percent", "clients_cpu_percent", "machine_busy_percent")
            )
            + " %",
        )
    return section
