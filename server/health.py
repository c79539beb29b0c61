"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from server.openapi import api
from server.responses import json_response
from server.state import app_state

_PROBE_TIMEOUT_S = 2.0


@api("Liveness: the process runs", auth=False, response={"type": "object"})
async def healthz(request: Request) -> Response:
    """GET /healthz: the process is alive."""
    return json_response({"status": "ok"})


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
