"""The one benchmark command: `python -m bench [--smoke] [--only 1,4] [--reference]`.

Starts what it needs (a fresh database and namespace on the given Postgres and Redis, or
embedded ones; web, worker, client and publisher processes), runs every measurement,
prints the table and writes bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    broadcast,
    environment,
    idle,
    processes,
    reconnect,
    saturation,
    submit,
    targeted,
)
from bench.clients import Backoff
from bench.plan import SMOKE, Context, Sizes, Targets
from bench.report import Section, table, write_json
from bench.services import (
    fresh_services,
    loopback_open,
    make_seats,
    raise_open_files_limit,
    server_versions,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REFERENCE = ROOT / "bench" / "reference.json"

#: (key, what it measures, function), in the issue's order
MEASUREMENTS: list[tuple[str, str, Callable[[Context], Section]]] = [
    ("1", "broadcast", broadcast.run),
    ("2", "targeted", targeted.run),
    ("3", "saturation", saturation.run),
    ("4", "idle", idle.run),
    ("5", "reconnect", reconnect.run),
    ("6", "submit", submit.run),
    ("7", "processes", processes.run),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (N=20), under 30 s: CI")
    p.add_argument(
        "--only", default="", help="comma-separated measurements to run: 1-7 or their names"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the web process in the measured windows (stacks beside the JSON)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SIZE=VALUE",
        help="override one of bench.plan.Sizes, e.g. --set broadcast_clients=1000 "
        "(tuples comma-separated); the JSON records every size used",
    )
    p.add_argument(
        "--backoff",
        default=None,
        metavar="BASE_S,CAP_S",
        help="clients reconnect with this full-jitter backoff instead of the documented one "
        "(to try a change to docs/protocol.md before making it)",
    )
    p.add_argument("--reference", action="store_true", help="also write bench/reference.json")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of the JSON results")
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="Postgres to create the run's database in (default: $DATABASE_URL, "
        "else an embedded one)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis (default: $REDIS_URL, else an embedded one)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="abort the whole run after this long (default 40, smoke 2)",
    )
    return p.parse_args(argv)


def override(sizes: Sizes, assignments: list[str]) -> Sizes:
    """`sizes` with `name=value` assignments applied, each value parsed as its field's type."""
    changes: dict[str, Any] = {}
    for assignment in assignments:
        name, _, raw = assignment.partition("=")
        if not hasattr(sizes, name):
            raise SystemExit(f"--set {name}: no such size (see bench/plan.py Sizes)")
        current = getattr(sizes, name)
        if isinstance(current, tuple):
            kind = type(current[0]) if current else float
            changes[name] = tuple(kind(x) for x in raw.split(",") if x)
        elif isinstance(current, bool):
            changes[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            changes[name] = type(current)(raw)
    return dataclasses.replace(sizes, **changes)


def resolve_services(args: argparse.Namespace) -> tuple[str, str]:
    """Postgres and Redis URLs: given, or embedded ones under .data/bench (as `pytest` does)."""
    admin_url, redis_url = args.database_url, args.redis_url
    if not admin_url or not redis_url:
        from server import embedded

        data_dir = ROOT / ".data" / "bench"
        admin_url = admin_url or embedded.start_postgres(data_dir)
        redis_url = redis_url or embedded.start_redis(data_dir)
    return admin_url, redis_url


def documented_backoff() -> tuple[Backoff, str]:
    """The reconnect backoff docs/protocol.md documents ("a random delay between 0 and
    min(15 s, 0.5 s x 2^attempt)", with a multiplication sign), read from it so the bench
    follows the doc."""
    doc = ROOT / "docs" / "protocol.md"
    text = doc.read_text() if doc.exists() else ""
    found = re.search(
        r"min\(\s*([\d.]+)\s*s,\s*([\d.]+)\s*s\s*[\u00d7x*]\s*([\d.]+)\s*\^\s*attempt\s*\)", text
    )
    if found is None:
        return Backoff(), "bench default (docs/protocol.md states no backoff formula)"
    cap_s, base_s, factor = (float(g) for g in found.groups())
    # the clients keep the shared rules (common/protocol/mirror.py): full jitter, doubling
    assert factor == 2 and "full jitter" in text, "docs/protocol.md and the mirror disagree"
    return Backoff(base_s=base_s, cap_s=cap_s), "docs/protocol.md"


def probe_features(ctx: Context) -> dict[str, Any]:
    """Which parts exist yet: the hub (`GET /ws` upgrades) and the pipeline (generate-video)."""
    import urllib.error
    import urllib.request

    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    seat = asyncio.run(make_seats(ctx.services.database_url, 1))[0]
    web = ctx.web().start()
    features: dict[str, Any] = {}
    try:
        web.wait_ready()
        try:
            with connect(
                web.ws_url,
                additional_headers={"Authorization": f"Bearer {seat.token}"},
                compression=None,
                proxy=None,
                open_timeout=5,
            ) as ws:
                ws.send(json.dumps({"type": "subscribe", "project_id": seat.project_id}))
                first = json.loads(ws.recv(timeout=5))
                features["hub"] = first.get("type") in ("snapshot", "subscribed")
                features["hub_first_frame"] = first.get("type")
        except InvalidStatus as exc:
            features["hub"] = False
            features["hub_status"] = exc.response.status_code
        except (OSError, TimeoutError, WebSocketException) as exc:
            features["hub"] = False
            features["hub_error"] = repr(exc)
        request = urllib.request.Request(
            f"{web.base_url}/api/ai/generate-video",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Bearer {seat.token}", "Content-Type": "application/json"},
        )
        try:
            with loopback_open(request, timeout=5) as r:
                status = r.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        # a route that exists refuses an empty body with 4xx other than 404/405
        features["pipeline"] = status not in (404, 405)
        features["generate_video_probe_status"] = status
    finally:
        web.stop()
    return features


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements; print the table; write the JSON."""
    args = parse_args(argv)
    sizes: Sizes = override(SMOKE if args.smoke else Sizes(), args.set)
    # the smoke run takes ~110 s on a loaded 2-core machine (CI runs it beside a browser)
    max_s = 60 * (args.max_minutes or (5 if args.smoke else 40))
    selected = {x.strip() for x in args.only.split(",") if x.strip()}

    def abort(signum: int, frame: Any) -> None:
        raise TimeoutError(f"benchmark run exceeded {max_s:.0f} s")

    def terminate(signum: int, frame: Any) -> None:
        # unwind, so every started web, worker and client process is stopped on the way out
        raise SystemExit(128 + signum)

    # bound the whole run; every measurement's own loops are bounded too
    signal.signal(signal.SIGALRM, abort)
    signal.signal(signal.SIGTERM, terminate)
    signal.alarm(int(max_s))
    nofile = raise_open_files_limit()
    started = time.monotonic()
    admin_url, redis_url = resolve_services(args)
    backoff, backoff_source = documented_backoff()
    if args.backoff:
        base_s, cap_s = (float(x) for x in args.backoff.split(","))
        backoff = Backoff(base_s=base_s, cap_s=cap_s)
        backoff_source = f"--backoff {args.backoff}"
    sections: list[Section] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with fresh_services(admin_url, redis_url) as services:
        ctx = Context(
            services=services,
            sizes=sizes,
            targets=Targets(),
            smoke=args.smoke,
            backoff=backoff,
            poll_delay_s=float(os.environ.get("CANVASFLOW_WORKER_POLL_DELAY_S", "0.05")),
            profile_dir=args.out / f"{stamp}-profiles" if args.profile else None,
        )
        env = environment.capture(server_versions(services))
        env["open_files_limit"] = nofile
        ctx.features = probe_features(ctx)
        print(f"bench: features {ctx.features}", flush=True)
        for key, name, fn in MEASUREMENTS:
            if selected and key not in selected and name not in selected:
                continue
            print(f"bench: {key} {name} ...", flush=True)
            t0 = time.monotonic()
            try:
                section = fn(ctx)
            except TimeoutError:
                raise
            except Exception as exc:
                section = Section(f"{key} {name}", skipped=f"failed: {exc!r}"[:200])
                section.figures["traceback"] = traceback.format_exc()
                print(section.figures["traceback"], file=sys.stderr, flush=True)
            section.figures["elapsed_s"] = round(time.monotonic() - t0, 1)
            sections.append(section)
    signal.alarm(0)
    env["load_at_end"] = environment.load_average()
    document = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "smoke": args.smoke,
        "elapsed_s": round(time.monotonic() - started, 1),
        "environment": env,
        "features": ctx.features,
        "backoff": {"source": backoff_source, **backoff.__dict__},
        "sizes": sizes.__dict__,
        "targets": ctx.targets.__dict__,
        "notes": ctx.notes,
    }
    print()
    print(table(sections))
    load = env["load_at_start"]
    print(
        f"\nload at start {load['load_1m']}/{load['load_5m']}/{load['load_15m']}, at end "
        f"{env['load_at_end']['load_1m']}; {env['cpu_count']} x {env['cpu_model']}"
    )
    out = args.out / f"{stamp}.json"
    write_json(out, document, sections)
    print(f"bench: wrote {out}")
    if args.reference:
        write_json(REFERENCE, document, sections)
        print(f"bench: wrote {REFERENCE}")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
