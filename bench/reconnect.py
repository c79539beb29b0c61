"""5. Reconnect storm: N clients (on P projects) with the documented backoff; the web
process is SIGKILLed while events flow and restarted on the same port; time from the new
process being ready until every client is subscribed again, and whether every client's
seq stream is gap-free up to the seq Postgres holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.clients import Backoff, processes_for
from bench.plan import Context
from bench.profile import sampled
from bench.report import Section, fmt, verdict
from bench.scene import hub_scene
from bench.services import CpuSplit, Meter, make_seats
from bench.stats import Latency


async def postgres_seqs(database_url: str, project_ids: list[str]) -> dict[str, Any]:
    """Each project's seq, and whether its event log holds exactly 1..seq."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT p.id::text AS id, p.seq, count(e.seq) AS logged, "
            "coalesce(min(e.seq), 0) AS lo, coalesce(max(e.seq), 0) AS hi "
            "FROM projects p LEFT JOIN events e ON e.project_id = p.id "
            "WHERE p.id = ANY($1::uuid[]) GROUP BY p.id, p.seq",
            project_ids,
        )
    finally:
        await conn.close()
    seqs = {r["id"]: int(r["seq"]) for r in rows}
    log_ok = all(
        r["logged"] == r["seq"] and (r["seq"] == 0 or (r["lo"] == 1 and r["hi"] == r["seq"]))
        for r in rows
    )
    return {"seqs": seqs, "log_consecutive": log_ok}


def measure(ctx: Context, backoff: Backoff, profile: Path | None = None) -> dict[str, Any]:
    """Kill and restart the web process under N subscribed clients reconnecting with
    `backoff`; with `profile`, py-spy samples the new web process during the storm."""
    s = ctx.sizes
    n, p = s.reconnect_clients, s.reconnect_projects
    projects = asyncio.run(make_seats(ctx.services.database_url, p, users=max(1, p // 10)))
    seats = [(projects[i % p].project_id, projects[i % p].token) for i in range(n)]
    client_projects = [sp for sp, _ in seats]
    web = ctx.web()
    port = web.port
    result: dict[str, Any] = {"clients": n, "projects": p, "backoff": backoff.__dict__}
    with hub_scene(
        ctx,
        seats,
        processes_for(n),
        web=web,
        backoff=backoff,
        connect_concurrency=s.reconnect_connect_concurrency,
    ) as (web, publisher, pool):
        result["subscribed_before"] = pool.ready["subscribed"]
        # events keep flowing through the kill, the outage and the storm
        flow_s = s.reconnect_before_kill_s + s.reconnect_down_s + s.reconnect_flow_after_s
        count = round(s.reconnect_rate * flow_s)
        targets = [(x.project_id, x.node_id) for x in projects]
        published: dict[str, Any] = {}

        def flow() -> None:
            published.update(publisher.changes(targets, s.reconnect_rate, count, flow_s + 30))

        flowing = threading.Thread(target=flow, daemon=True)
        flowing.start()
        time.sleep(s.reconnect_before_kill_s)
        # 1. the crash: no close frames, the kernel resets every socket
        web.kill()
        killed_at = time.monotonic()
        time.sleep(s.reconnect_down_s)
        # 2. the restart on the same port; the clock starts when /readyz answers
        web = ctx.web(port)
        web.start()
        ready_at = web.wait_ready()
        # 3. wait (bounded) until every client resubscribed
        deadline = ready_at + s.reconnect_deadline_s
        status = pool.status()
        meters = Meter(web.pid), [Meter(pid) for pid in pool.pids]
        with sampled(web.pid, profile) as prof, CpuSplit(*meters) as cpu:
            while time.monotonic() < deadline:
                status = pool.status()
                if status["resubscribed"] >= n and status["subscribed"] >= n:
                    break
                time.sleep(0.1)
        result["storm_cpu"] = cpu.figures
        if prof:
            result["profile"] = prof
        flowing.join(flow_s + 60)
        # 4. let the last events arrive, then compare every client with Postgres
        pg: dict[str, Any] = {}
        settle_deadline = time.monotonic() + 15
        while time.monotonic() < settle_deadline:
            pg = asyncio.run(postgres_seqs(ctx.services.database_url, list(set(client_projects))))
            got = pool.collect(clear=False)
            behind = sum(
                1 for proj, last in got.last_seq_per_client if last != pg["seqs"].get(proj)
            )
            if behind == 0:
                break
            time.sleep(0.2)
        got = pool.collect(clear=True)
    last = status["last_resubscribed_at"]
    behind_clients = sum(1 for proj, seq in got.last_seq_per_client if seq != pg["seqs"].get(proj))
    result.update(
        {
            "down_s": round(ready_at - killed_at, 2),
            "resubscribed": status["resubscribed"],
            "subscribed_after": status["subscribed"],
            "all_resubscribed_s": round(last - ready_at, 2)
            if last is not None and status["resubscribed"] >= n
            else None,
            "events_published": published.get("count"),
            "gaps": got.gaps,
            "duplicates": got.duplicates,
            "clients_behind_postgres": behind_clients,
            "postgres_log_consecutive": pg["log_consecutive"],
            "reconnect_attempts": got.reconnects,
            # where the time went: waiting out the backoff, or being served once connecting
            "resubscribed_after_ready": Latency.of_seconds(
                [done - ready_at for _, done in got.resubscribes]
            ).as_dict(),
            "attempt_to_subscribed": Latency.of_seconds(
                [done - start for start, done in got.resubscribes]
            ).as_dict(),
            "backoff_wait_after_ready": Latency.of_seconds(
                [max(0.0, start - ready_at) for start, _ in got.resubscribes]
            ).as_dict(),
            "errors": got.errors,
        }
    )
    return result


#: clients that retry at once (50 ms doubling to 0.5 s): what the server alone can absorb
EAGER = Backoff(base_s=0.05, cap_s=0.5)


def run(ctx: Context) -> Section:
    """The storm with the documented backoff (graded), then with eager clients (the
    server's own capacity, as the limit beside it)."""
    section = ctx.hub_section("5 reconnect")
    if section.skipped:
        return section
    # smoke runs only the eager storm: the same code, without waiting out the backoff
    f = measure(ctx, ctx.backoff if not ctx.smoke else EAGER)
    section.figures.update(f)
    eager = (
        measure(ctx, EAGER, ctx.profile_path("reconnect-eager"))
        if ctx.sizes.reconnect_eager
        else None
    )
    section.figures["eager_clients"] = eager
    cap_s = ctx.sizes.reconnect_compare_cap_s
    capped = (
        measure(ctx, dataclasses.replace(ctx.backoff, cap_s=cap_s))
        if cap_s and not ctx.smoke
        else None
    )
    section.figures["capped_backoff"] = capped
    n = f["clients"]
    took = f["all_resubscribed_s"]
    took_eager = eager["all_resubscribed_s"] if eager else None
    section.row(
        f"N={n} all resubscribed after ready",
        _storm_figure(f),
        (
            "-"
            if took_eager is None or eager is None
            else fmt(took_eager, " s", 2)
            + f" (eager clients; web {fmt(eager['storm_cpu']['server_cpu_percent'], digits=0)}"
            " % CPU)"
        ),
        f"<= {ctx.targets.reconnect_s:g} s",
        verdict(took is not None and took <= ctx.targets.reconnect_s),
    )
    if capped is not None:
        section.row(f"N={n} same, backoff capped at {cap_s:g} s", _storm_figure(capped))
    storms = [x for x in (f, eager, capped) if x is not None]
    gap_free = all(
        x["gaps"] == 0 and x["clients_behind_postgres"] == 0 and x["postgres_log_consecutive"]
        for x in storms
    )
    gaps, dups = sum(x["gaps"] for x in storms), sum(x["duplicates"] for x in storms)
    behind = sum(x["clients_behind_postgres"] for x in storms)
    section.row(
        f"N={n} seq vs Postgres ({len(storms)} storm{'s' if len(storms) > 1 else ''})",
        f"{gaps} gaps, {dups} dups, {behind} behind",
        "",
        "no gap",
        verdict(gap_free),
    )
    return section


def _storm_figure(storm: dict[str, Any]) -> str:
    """A storm's time to all resubscribed, with the backoff wait after ready beside it."""
    took = storm["all_resubscribed_s"]
    waited = storm["backoff_wait_after_ready"]
    return (
        ("-" if took is None else fmt(took, " s", 2))
        + f" (backoff wait p50/max {fmt(waited['p50_ms'] / 1000, ' s', 2)}/"
        f"{fmt(waited['max_ms'] / 1000, ' s', 2)})"
    )
