"""1. Broadcast: N clients on ONE project; events through publish_change and the hub.

Each N runs two phases against canvasflow and against the bare websockets server (the
limit), with the same clients and the same frames:
- paced: events at a fixed rate for a fixed time, for delivery latency p50/p99/max;
- burst: events back to back, for delivered frames/s (received / first send → last receive).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import msgspec

from bench.bare import BareServer
from bench.clients import ClientPool, processes_for, wait_delivered
from bench.plan import Context
from bench.profile import sampled
from bench.report import Section, fmt, verdict
from bench.scene import hub_scene
from bench.services import CpuSplit, Meter, free_port, make_seats
from bench.stats import Latency

Send = Callable[[float | None, int], dict[str, Any]]


def phase(
    pool: ClientPool,
    meter: Meter,
    send: Send,
    rate: float | None,
    count: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Send `count` events at `rate` to the pool's subscribed clients; what arrived, how fast.

    With `profile`, py-spy samples the server process during the window."""
    n = int(pool.ready["subscribed"])
    pool.collect(clear=True)
    clients = [Meter(pid) for pid in pool.pids]
    with sampled(meter.process.pid, profile) as prof, CpuSplit(meter, clients) as cpu:
        sent = send(rate, count)
        wait_delivered(pool, "events", n * int(sent["count"]))
    got = pool.collect(clear=True)
    span = got.last_recv - sent["first"]
    cpu_s = cpu.figures["server_cpu_s"]
    return {
        # the server's CPU per frame delivered: the figure the limits are set on
        "server_us_per_frame": round(1e6 * cpu_s / got.events, 2) if got.events else None,
        "rate_per_s": rate,
        "events_sent": sent["count"],
        "achieved_events_per_s": round(sent["count"] / max(1e-9, sent["last"] - sent["first"]), 1),
        "frames_expected": n * sent["count"],
        "frames_received": got.events,
        "delivered_frames_per_s": round(got.events / span, 1) if span > 0 else None,
        "latency": Latency.of_seconds(got.latencies_s).as_dict(),
        **cpu.figures,
        "frame_bytes": round(got.event_bytes / got.events) if got.events else None,
        "gaps": got.gaps,
        "duplicates": got.duplicates,
        "resyncs": got.resyncs,
        "errors": got.errors,
        "sample_frame": got.sample_frame,
        **({"profile": prof} if profile else {}),
    }


def rates_for(ctx: Context, n: int) -> tuple[float, int, int]:
    """(paced rate, paced events, burst events) for N clients: bounded frames per phase."""
    s = ctx.sizes
    rate = min(s.broadcast_max_rate, s.broadcast_frames_per_s / n)
    return (
        rate,
        max(5, round(rate * s.broadcast_seconds)),
        max(s.broadcast_min_burst, s.broadcast_burst_frames // n),
    )


def measure_bare(ctx: Context, n: int, template: dict[str, Any] | None) -> dict[str, Any]:
    """The limit: the bare server, the same clients, the same frames (shaped as `template`,
    a frame the hub sent, when there is one)."""
    rate, paced, burst = rates_for(ctx, n)
    with BareServer(free_port()) as bare:
        seats = [("", "")] * n
        with ClientPool(
            bare.url,
            seats,
            processes_for(n),
            subscribe=False,
            connect_timeout_s=ctx.sizes.connect_timeout_s,
        ) as pool:
            meter = Meter(bare.pid)
            budget = ctx.sizes.broadcast_seconds * 3 + 30

            def send(r: float | None, c: int) -> dict[str, Any]:
                return bare.send(r, c, timeout_s=budget, template=template)

            phase(pool, meter, send, None, 3)  # warm up
            paced_figures = phase(pool, meter, send, rate, paced)
            bursts = [
                phase(pool, meter, send, None, burst) for _ in range(ctx.sizes.broadcast_repeats)
            ]
            return {
                "connected": bare.count(),
                "paced": paced_figures,
                "burst": bursts[0],
                "bursts": bursts,
            }


def measure_canvasflow(ctx: Context, n: int) -> dict[str, Any]:
    """canvasflow: one web process, the publisher acting as the worker, N tabs of one user."""
    import asyncio

    rate, paced, burst = rates_for(ctx, n)
    seat = asyncio.run(make_seats(ctx.services.database_url, 1))[0]
    with hub_scene(ctx, [(seat.project_id, seat.token)] * n, processes_for(n)) as (
        web,
        publisher,
        pool,
    ):
        meter = Meter(web.pid)
        budget = ctx.sizes.broadcast_seconds * 3 + 30
        target = [(seat.project_id, seat.node_id)]
        # one project's changes per second, before any client follows it, beside the
        # bare seq bump + log INSERT transaction (the row lock serialises both)
        k = ctx.sizes.durable_changes
        durable = publisher.changes(target, None, k, budget)
        bare_writes = publisher.bare_writes(seat.project_id, k, budget)

        def send(r: float | None, c: int) -> dict[str, Any]:
            return publisher.changes(target, r, c, budget)

        def send_raw(r: float | None, c: int) -> dict[str, Any]:
            return publisher.raw(target, r, c, budget)

        phase(pool, meter, send, None, 3)  # warm up
        paced_figures = phase(
            pool, meter, send, rate, paced, ctx.profile_path(f"broadcast-n{n}-paced")
        )
        # durable and hub-only bursts alternate, so both see the same machine
        bursts, raw_bursts = [], []
        for i in range(ctx.sizes.broadcast_repeats):
            bursts.append(
                phase(
                    pool,
                    meter,
                    send,
                    None,
                    burst,
                    ctx.profile_path(f"broadcast-n{n}-burst-{i}"),
                )
            )
            raw_bursts.append(
                phase(
                    pool,
                    meter,
                    send_raw,
                    None,
                    burst,
                    ctx.profile_path(f"broadcast-n{n}-raw-{i}"),
                )
            )
        return {
            "subscribed": pool.ready["subscribed"],
            "connect_errors": pool.ready["errors"],
            "paced": paced_figures,
            "burst": bursts[0],
            "bursts": bursts,
            "raw_bursts": raw_bursts,
            "changes_per_s": _per_s(durable),
            "bare_writes_per_s": _per_s(bare_writes),
            "web_rss_bytes": Meter(web.pid).rss_bytes(),
        }


def run(ctx: Context) -> Section:
    """Every N: the bare limit, then canvasflow, then the rows comparing them."""
    section = Section("1 broadcast")
    t = ctx.targets
    for n in ctx.sizes.broadcast_clients:
        # canvasflow first, so the bare server can send byte for byte the frames the hub sent
        cf = measure_canvasflow(ctx, n) if ctx.features.get("hub") else None
        sample = cf["paced"]["sample_frame"] if cf else None
        bare = measure_bare(ctx, n, msgspec.json.decode(sample) if sample else None)
        section.figures[f"n={n}"] = {"bare": bare, "canvasflow": cf}
        bp, bb = bare["paced"], bare["burst"]
        rate = bp["rate_per_s"]
        if cf is None:
            section.row(f"N={n} latency @{rate:g} ev/s", "-", _lat(bp), "", "n/a")
            section.row(
                f"N={n} delivered frames/s", "-", fmt(bb["delivered_frames_per_s"]), "", "n/a"
            )
            continue
        cp, cb = cf["paced"], cf["burst"]
        target_ms = t.broadcast_p99_ms_at_1000 if n == 1000 else None
        section.row(
            f"N={n} latency @{rate:g} ev/s",
            _lat(cp) + _loss(cp),
            _lat(bp),
            f"p99 <= {target_ms:g} ms" if target_ms else "",
            verdict(cp["latency"]["p99_ms"] <= target_ms) if target_ms else "",
        )
        section.row(
            f"N={n} CPU web/clients/machine",
            _cpu(cp),
            _cpu(bp),
            f"of {100 * (cp.get('machine_cores') or 1)} %",
        )
        ratio = (cb["delivered_frames_per_s"] or 0) / (bb["delivered_frames_per_s"] or 1)
        section.row(
            f"N={n} delivered frames/s",
            f"{fmt(cb['delivered_frames_per_s'])} ({ratio:.0%}; published "
            f"{fmt(cb['achieved_events_per_s'], digits=0)} ev/s, web "
            f"{fmt(cb['server_cpu_percent'], digits=0)} % CPU)" + _loss(cb),
            f"{fmt(bb['delivered_frames_per_s'])} "
            f"(sent {fmt(bb['achieved_events_per_s'], digits=0)} ev/s)",
            f">= {t.broadcast_fraction_of_bare:.0%} of limit",
            verdict(ratio >= t.broadcast_fraction_of_bare),
        )
        bare_us = _per_frame(bare["bursts"])
        raw_us = _per_frame(cf["raw_bursts"])
        durable_us = _per_frame(cf["bursts"])
        _cpu_ratio_row(
            section,
            f"N={n} CPU us/delivery, hub only",
            raw_us,
            bare_us,
            "bare",
            t.delivery_cpu_over_bare if n == 1000 else None,
        )
        _cpu_ratio_row(
            section,
            f"N={n} CPU us/delivery, durable",
            durable_us,
            raw_us,
            "hub only",
            t.durable_over_raw if n == 1000 else None,
        )
        if cf.get("changes_per_s"):
            section.row(
                f"N={n} one project's changes/s",
                f"{fmt(cf['changes_per_s'])}/s (publish_change, back to back, no subscriber)",
                f"bare UPDATE+INSERT {fmt(cf['bare_writes_per_s'])}/s",
            )
    return section


def _cpu_ratio_row(
    section: Section,
    figure: str,
    ours: list[float],
    limit: list[float],
    limit_name: str,
    target: float | None,
) -> None:
    """A row of CPU per delivery beside its limit's, each burst's ratio to the limit's median,
    graded on the medians when there is a target."""
    if not (ours and limit):
        return
    base = median(limit)
    section.row(
        figure,
        f"{_range(ours)} ({_range([x / base for x in ours], 2)}x)",
        f"{limit_name} {_range(limit)}",
        f"<= {target:g}x {limit_name}" if target else "",
        verdict(median(ours) <= target * base) if target else "",
    )


def _per_s(sent: dict[str, Any]) -> float:
    """Calls per second of a back-to-back run."""
    count: float = sent["count"]
    span: float = sent["last"] - sent["first"]
    return round(count / max(1e-9, span), 1)


def _per_frame(phases: list[dict[str, Any]]) -> list[float]:
    """Server CPU per delivered frame (us) of each phase that delivered something."""
    return [p["server_us_per_frame"] for p in phases if p.get("server_us_per_frame")]


def _range(values: list[float], digits: int = 1) -> str:
    """`lo-hi` of `values` (one value alone when they are all the same)."""
    lo, hi = min(values), max(values)
    return (
        f"{lo:.{digits}f}"
        if f"{lo:.{digits}f}" == f"{hi:.{digits}f}"
        else (f"{lo:.{digits}f}-{hi:.{digits}f}")
    )


def _lat(phase_figures: dict[str, Any]) -> str:
    lat = phase_figures["latency"]
    return f"{fmt(lat['p50_ms'])}/{fmt(lat['p99_ms'])}/{fmt(lat['max_ms'])} ms"


def _cpu(phase_figures: dict[str, Any]) -> str:
    """Server / client processes / whole machine CPU in the paced window (% of one core)."""
    f = phase_figures
    return (
        f"{fmt(f['server_cpu_percent'], digits=0)}/{fmt(f['clients_cpu_percent'], digits=0)}"
        f"/{fmt(f['machine_busy_percent'], digits=0)} %"
    )


def _loss(phase_figures: dict[str, Any]) -> str:
    """A note when frames were missing, out of order or resynced."""
    missing = phase_figures["frames_expected"] - phase_figures["frames_received"]
    notes = []
    if missing:
        notes.append(f"{missing} missing")
    if phase_figures["gaps"]:
        notes.append(f"{phase_figures['gaps']} gaps")
    if phase_figures["resyncs"]:
        notes.append(f"{phase_figures['resyncs']} resyncs")
    return f" [{', '.join(notes)}]" if notes else ""
