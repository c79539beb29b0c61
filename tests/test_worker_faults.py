"""The worker outlives every Redis fault of arq's poll loop, each injected at an exact command.

The worker runs in the test's event loop with the production options, talking
to a private Redis through tests/support/redis_proxy.py; the web process talks to the
same Redis directly. Each case drops the worker's connection at one command of
arq's loop (the claim's WATCH pipeline, the job's pipelines, the health key,
the cron's enqueue) or keeps Redis away longer than the command retries; the
worker must log it, keep polling, and run a job submitted before and one
submitted after the fault. `max_jobs` is 1, so a claim slot lost to a fault
would stop every later job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from common.config import Settings
from tests.support.accounts import Account, sign_up
from tests.support.inproc_worker import production_worker, running
from tests.support.procs import RedisServer
from tests.support.redis_proxy import Drop, RedisProxy
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, replace_settings, settings_for
from tests.support.workers import submit_job


@dataclass
class Rig:
    """A private Redis, a proxy to it, a web process and an account."""

    settings: Settings
    proxy: RedisProxy
    http: httpx.AsyncClient
    account: Account


@pytest.fixture
async def rig(services: Services) -> AsyncIterator[Rig]:
    """A private Redis with a proxy, and a web process on that Redis (not through the proxy)."""
    redis_server = await asyncio.to_thread(RedisServer().start)
    port = free_port()
    settings = settings_for(
        services,
        redis_url=redis_server.url,
        namespace=f"cff{secrets.token_hex(3)}",
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        worker_max_jobs=1,
        job_lease_s=5.0,
    )
    web = ServerThread(settings, port)
    await asyncio.to_thread(web.start)
    try:
        async with (
            RedisProxy(redis_server.port) as proxy,
            httpx.AsyncClient(base_url=web.base_url, timeout=10) as http,
        ):
            account = await sign_up(http)
            yield Rig(settings, proxy, http, account)
    finally:
        await asyncio.to_thread(web.stop)
        redis_server.stop()


async def finished(rig: Rig, job_id: str, worker_task: asyncio.Task[None]) -> dict[str, Any]:
    """Wait for the job to complete; fails at once, with its error, if the worker ended."""
    async with asyncio.timeout(45):
        while True:
            if worker_task.done():
                raise AssertionError(f"the worker ended: {worker_task.exception()!r}")
            r = await rig.http.get(f"/api/ai/jobs/{job_id}", headers=rig.account.headers)
            job: dict[str, Any] = r.json()
            if job["status"] in ("completed", "failed", "cancelled"):
                assert job["status"] == "completed", job
                return job
            await asyncio.sleep(0.05)


#: (command, first key's prefix, only while WATCHing, which match, connects refused after)
FAULTS = {
    # the poll's queue read (a plain command: redis-py retries it)
    "poll read": Drop("ZRANGEBYSCORE", nth=2),
    # the claim: WATCH in-progress key, EXISTS, ZSCORE, MULTI PSETEX EXEC
    "claim WATCH": Drop("WATCH", "arq:in-progress:"),
    "claim EXISTS (WatchError)": Drop("EXISTS", "arq:in-progress:", watching=True),
    "claim ZSCORE (WatchError)": Drop("ZSCORE", watching=True),
    "claim EXEC": Drop("EXEC", watching=True),
    # the job's own pipelines: read the job at start, write the result at the end
    "job start pipeline": Drop("GET", "arq:job:"),
    "job finish pipeline": Drop("SET", "arq:result:"),
    # heart_beat: the health key, and the cron's enqueue (WATCH, then EXISTS: WatchError)
    "health key": Drop("PSETEX", "cff"),
    "cron enqueue EXISTS (WatchError)": Drop("EXISTS", "arq:job:cff", watching=True),
    # Redis away for longer than the commands' retries: ConnectionError out of the loop
    "Redis away past the retries": Drop("ZRANGEBYSCORE", nth=3, refuse=12),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_worker_survives_a_dropped_connection(rig: Rig, fault: str) -> None:
    """A connection dropped at this command of arq's loop is survived: jobs before and after it complete."""
    template = FAULTS[fault]
    rule = rig.proxy.drop(dataclasses.replace(template, done=asyncio.Event()))
    before = await submit_job(rig.http, rig.account)
    proxied = replace_settings(rig.settings, redis_url=rig.proxy.url)
    worker = production_worker(proxied, retries=2 if rule.refuse else None)
    async with running(worker) as task:
        async with asyncio.timeout(30):
            await rule.done.wait()
        await finished(rig, before["job_id"], task)
        after = await submit_job(rig.http, rig.account)
        await finished(rig, after["job_id"], task)
        assert not task.done()
