"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from db.pool import Database, DatabaseUnavailable
from server.openapi import api
from server.responses import json_response
from server.state import app_state

_PROBE_TIMEOUT_S = 2.0
#: /healthz's own try for a connection: short, as orchestrators time probes out at ~1 s
_LIVENESS_PROBE_S = 0.5
#: a connection handed out this recently proves the pool works without a probe
_FRESH_S = 1.0
_RETRY_AFTER_S = 5


@api(
    "Liveness: the process runs and can get a database connection",
    auth=False,
    response={"type": "object"},
    errors=[503],
)
async def healthz(request: Request) -> Response:
    """GET /healthz: 503 once no Postgres connection could be had for db_unhealthy_after_s.

    A pool starved for that long (connections leaked, or Postgres out of
    reach) is not something this process recovers from by waiting, so the
    orchestrator should restart it. A busy pool is not unhealthy: any caller
    that gets a connection resets the clock.
    """
    state = app_state(request)
    store, settings = state.store, state.settings
    problem = await postgres_liveness(store.db, settings.db_unhealthy_after_s)
    if problem is None:
        return json_response({"status": "ok"})
    stats = store.db.stats()
    body = {
        "status": "unavailable",
        "checks": {"postgres": problem},
        "pool": {"size": stats.size, "idle": stats.idle, "waiting": stats.waiting},
    }
    response = json_response(body, 503)
    response.headers["Retry-After"] = str(_RETRY_AFTER_S)
    return response


async def postgres_liveness(db: Database, unhealthy_after_s: float) -> str | None:
    """None while a connection could be had within `unhealthy_after_s`; else what is wrong."""
    last = db.last_acquired_at
    if db.failing_since is None and last is not None and db.clock() - last < _FRESH_S:
        return None
    try:
        await db.probe(min(_LIVENESS_PROBE_S, unhealthy_after_s))
    except DatabaseUnavailable as exc:
        failing_since = db.failing_since
        if failing_since is None:
            return None  # another caller got a connection meanwhile
        down_s = db.clock() - failing_since
        if down_s < unhealthy_after_s:
            return None
        return f"no database connection for {down_s:.0f} s ({exc})"
    return None


async def _check(name: str, probe: asyncio.Future[object] | object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, _PROBE_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as exc:
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


@api("Readiness: Postgres and Redis answer", auth=False, response={"type": "object"}, errors=[503])
async def readyz(request: Request) -> Response:
    """GET /readyz: Postgres and Redis answer; 503 with the failing one otherwise."""
    store = app_state(request).store
    checks = dict(
        await asyncio.gather(
            _check("postgres", store.db.fetch_val("SELECT 1")),
            _check("redis", store.redis.ping()),
        )
    )
    ok = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )
