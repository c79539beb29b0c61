"""2. Targeted: N clients, each on its own project with one job ticking.

The publisher (as the worker does) sends each job's progress ticks with
db.changes.publish_progress; a tick is named by (project, progress value), so the
publisher's send times join the clients' receive times on one clock.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from bench.clients import processes_for, wait_delivered
from bench.plan import Context
from bench.profile import sampled
from bench.report import Section, fmt, verdict
from bench.scene import hub_scene
from bench.services import CpuWindow, Meter, make_seats
from bench.stats import Latency


def measure(ctx: Context, n: int) -> dict[str, Any]:
    """N tabs on N projects, one job ticking in each, for a bounded time."""
    s = ctx.sizes
    seats = asyncio.run(make_seats(ctx.services.database_url, n, users=max(1, n // 10)))
    # the ticking jobs: ticks carry only ids, so ids of the right shape suffice
    jobs = [(seat.project_id, str(uuid.uuid4())) for seat in seats]
    ticks = round(n * s.targeted_tick_per_s * s.targeted_seconds)
    with hub_scene(ctx, [(x.project_id, x.token) for x in seats], processes_for(n)) as (
        web,
        publisher,
        pool,
    ):
        meter = Meter(web.pid)
        pool.collect(clear=True)
        with (
            sampled(web.pid, ctx.profile_path(f"targeted-n{n}")) as prof,
            CpuWindow(meter) as cpu,
        ):
            sent = publisher.progress(
                jobs, n * s.targeted_tick_per_s, ticks, s.targeted_seconds * 2 + 10
            )
            wait_delivered(pool, "progress", int(sent["count"]))
        got = pool.collect(clear=True)
    sent_at = {(p, v): t for p, v, t in sent["sent"]}
    latencies = [t - sent_at[(p, v)] for p, v, t in got.progress if (p, v) in sent_at]
    return {
        "clients": n,
        "subscribed": pool.ready["subscribed"],
        "ticks_sent": sent["count"],
        "ticks_received": len(got.progress),
        "tick_rate_per_s": n * s.targeted_tick_per_s,
        "latency": Latency.of_seconds(latencies).as_dict(),
        "web_cpu_percent": round(cpu.percent, 1),
        "errors": got.errors,
        **({"profile": prof} if prof else {}),
    }


def run(ctx: Context) -> Section:
    """Latency of progress ticks at N = sizes.targeted_clients."""
    section = ctx.hub_section("2 targeted")
    if section.skipped:
        return section
    n = ctx.sizes.targeted_clients
    figures = measure(ctx, n)
    section.figures[f"n={n}"] = figures
    lat = figures["latency"]
    missing = figures["ticks_sent"] - figures["ticks_received"]
    section.row(
        f"N={n} tick latency @{figures['tick_rate_per_s']:g} ticks/s",
        f"{fmt(lat['p50_ms'])}/{fmt(lat['p99_ms'])}/{fmt(lat['max_ms'])} ms"
        + (f" [{missing} missing]" if missing else ""),
        "",
        f"p99 <= {ctx.targets.targeted_p99_ms:g} ms",
        verdict(lat["p99_ms"] <= ctx.targets.targeted_p99_ms and missing == 0),
    )
    section.row(f"N={n} web CPU", f"{fmt(figures['web_cpu_percent'])} %")
    return section
