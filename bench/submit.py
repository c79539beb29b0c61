"""6. Submit: `POST /api/ai/generate-video` requests/s with p50/p99, and enqueue → worker
pickup latency; beside the limits: raw arq enqueue/pickup and a bare INSERT.
"""

from __future__ import annotations

from typing import Any

from bench import limits
from bench.plan import Context
from bench.report import Section, fmt, verdict


def run(ctx: Context) -> Section:
    """The limits always; canvasflow's figures once the pipeline is there."""
    section = Section("6 submit")
    s, t = ctx.sizes, ctx.targets
    arq = limits.arq_limits(
        ctx.services,
        throughput_count=s.arq_throughput_count,
        pickup_count=s.submit_pickups,
        pickup_rate=s.submit_pickup_rate,
        poll_delay_s=ctx.poll_delay_s,
    )
    insert = limits.insert_limit(ctx.services, s.insert_count)
    section.figures["limits"] = {"arq": arq, "insert": insert}
    cf: dict[str, Any] | None = None
    if ctx.features.get("pipeline"):
        from bench import submit_load

        cf = submit_load.measure(ctx)
        section.figures["canvasflow"] = cf
    limit_rate = (
        f"arq {fmt(arq['enqueue']['enqueues_per_s'])}/s, INSERT {fmt(insert['inserts_per_s'])}/s"
    )
    pick = arq["pickup"]
    limit_pick = f"{fmt(pick['p50_ms'])}/{fmt(pick['p99_ms'])}/{fmt(pick['max_ms'])} ms"
    if cf is None:
        section.row("generate-video requests/s", "-", limit_rate, f">= {t.submit_rps:g}/s", "n/a")
        section.row("pickup latency", "-", limit_pick, f"p99 <= {t.pickup_p99_ms:g} ms", "n/a")
        section.skipped = "pipeline (POST /api/ai/generate-video) not present yet"
        return section
    lat = cf["latency"]
    section.row(
        f"generate-video requests/s (c={cf['concurrency']})",
        f"{fmt(cf['requests_per_s'])}/s, p50/p99/max {fmt(lat['p50_ms'])}/"
        f"{fmt(lat['p99_ms'])}/{fmt(lat['max_ms'])} ms"
        + f", web {fmt(cf['web_cpu_percent'], digits=0)} % CPU, machine "
        f"{fmt(cf['machine_busy_percent'], digits=0)} %"
        + (f" [{cf['non_202']} non-202]" if cf["non_202"] else ""),
        limit_rate,
        f">= {t.submit_rps:g}/s",
        verdict(cf["requests_per_s"] >= t.submit_rps and cf["non_202"] == 0),
    )
    cp = cf["pickup"]
    section.row(
        "enqueue -> worker pickup",
        f"{fmt(cp['p50_ms'])}/{fmt(cp['p99_ms'])}/{fmt(cp['max_ms'])} ms"
        + (f" [{cf['pickups_missing']} not picked up]" if cf["pickups_missing"] else ""),
        limit_pick,
        f"p99 <= {t.pickup_p99_ms:g} ms",
        verdict(cp["p99_ms"] <= t.pickup_p99_ms and cf["pickups_missing"] == 0),
    )
    return section
