"""F1 end to end: websocket churn never costs another user the database, probes say so.

Real uvicorn (a ServerThread, or `canvasflow web` as a child process), the real
`websockets` client, the run's Postgres. Each test checks what the finding
saw break: another user's REST call, the pool's free connections, sessions
left `idle in transaction` in pg_stat_activity, /healthz, and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from server.realtime import HubConfig
from tests.support.accounts import sign_up
from tests.support.api import make_node, make_project
from tests.support.procs import PostgresServer, WebProc
from tests.support.services import Services, free_port, settings_for
from tests.support.ws import HubServer, WsClient, hub_server

#: frames a test client may send: far above the churn, so the rate limit never answers
FAST_HUB = HubConfig(messages_per_s=10_000.0, message_burst=10_000, max_errors=10_000)


async def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Poll `check` (sync or async) until it is truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


async def busy_sessions(admin_url: str, database: str) -> list[dict[str, Any]]:
    """Sessions of `database` that are not idle: in a transaction, or running a query."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT state, wait_event_type, left(query, 80) AS query FROM pg_stat_activity "
            "WHERE datname = $1 AND backend_type = 'client backend' "
            "AND state IS DISTINCT FROM 'idle'",
            database,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


def pool_whole(srv: HubServer) -> bool:
    """Every connection the server's pool opened is free again."""
    stats = srv.state.store.db.stats()
    return bool(stats.idle == stats.size and stats.waiting == 0)


async def assert_others_served(srv: HubServer, services: Services) -> None:
    """Another user's REST call answers, the pool is whole and Postgres shows nothing held."""
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=5) as other:
        bob = await sign_up(other)
        r = await other.get("/api/projects", headers=bob.headers)
        assert r.status_code == 200, r.text
    name = services.database_name

    async def clean() -> bool:
        return await busy_sessions(services.admin_url, name) == []

    # a cancelled task's connection comes back a moment later, through a shielded release
    await wait_until(clean, 10, "no session of this database idle in transaction or busy")
    await wait_until(lambda: pool_whole(srv), 10, "the pool has every connection back")


async def drain(client: WsClient) -> None:
    """Read and drop frames so the server's outbox for this client never fills."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in client.ws:
            pass


async def churn(
    base_url: str, token: str, project_id: str, pairs: int, seed: int, pace_s: float = 0.0
) -> None:
    """One websocket: subscribe, wait 0-15 ms, unsubscribe, `pairs` times (a pair per pace_s)."""
    client = await WsClient.open(base_url, token)
    reader = asyncio.create_task(drain(client))
    rng = random.Random(seed)
    try:
        for _ in range(pairs):
            pause = rng.uniform(0, 0.015)
            await client.subscribe(project_id)
            await asyncio.sleep(pause)
            await client.send({"type": "unsubscribe", "project_id": project_id})
            await asyncio.sleep(max(0.0, pace_s - pause))
    finally:
        await client.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


@pytest.mark.timeout(180)
async def test_subscribe_unsubscribe_churn_leaks_no_connection(services: Services) -> None:
    """One websocket: subscribe, 0-15 ms, unsubscribe, 500 times; others are still served."""
    async with hub_server(services, FAST_HUB) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
            alice = await sign_up(http)
            project_id = await make_project(http, alice)
            for i in range(5):
                await make_node(http, alice, project_id, x=i)
        await churn(srv.base_url, alice.token, project_id, 500, seed=1)
        await assert_others_served(srv, services)


@pytest.mark.timeout(180)
async def test_clients_that_drop_right_after_subscribing_leak_no_connection(
    services: Services,
) -> None:
    """300 clients connect, subscribe and drop (closed or cut) within 15 ms; others are served."""
    async with hub_server(services, FAST_HUB) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
            alice = await sign_up(http)
            project_id = await make_project(http, alice)
            for i in range(5):
                await make_node(http, alice, project_id, x=i)
        rng = random.Random(2)

        async def one(i: int) -> None:
            client = await WsClient.open(srv.base_url, alice.token)
            await client.subscribe(project_id)
            await asyncio.sleep(rng.uniform(0, 0.015))
            if i % 2:
                client.ws.transport.abort()  # the network goes: no close frame
            else:
                await client.close()

        for batch in range(30):
            await asyncio.gather(*(one(batch * 10 + i) for i in range(10)))
        await assert_others_served(srv, services)


async def healthz(base_url: str) -> int:
    """The status /healthz answers (0 when it does not answer within 3 s)."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=3) as c:
            return (await c.get("/healthz")).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.timeout(90)
async def test_healthz_turns_unhealthy_while_the_pool_is_exhausted(services: Services) -> None:
    """No connection to be had for db_unhealthy_after_s: /healthz is 503, then 200 once freed."""
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        db_acquire_timeout_s=0.5,
        db_unhealthy_after_s=1.0,
    )
    srv = HubServer(settings, port)
    await asyncio.to_thread(srv.start)
    try:
        assert await healthz(srv.base_url) == 200
        db = srv.state.store.db
        loop = srv.hub.bus._listener.get_loop()  # type: ignore[union-attr]
        freed = asyncio.Event()
        holding = asyncio.Semaphore(0)

        async def hold_every_connection() -> None:
            async def hold() -> None:
                async with db.connection():
                    holding.release()
                    await freed.wait()

            # the pool's size as app.py makes it (make_database's default)
            await asyncio.gather(*(hold() for _ in range(10)))

        async def all_held() -> None:
            for _ in range(10):
                await holding.acquire()

        # every connection is held on the server's own loop, as leaked ones would be
        held = asyncio.run_coroutine_threadsafe(hold_every_connection(), loop)
        await asyncio.wait_for(
            asyncio.wrap_future(asyncio.run_coroutine_threadsafe(all_held(), loop)), 10
        )
        await wait_until(lambda: _is(healthz(srv.base_url), 503), 15, "/healthz answers 503")
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=3) as c:
            r = await c.get("/healthz")
            assert r.status_code == 503 and r.headers["retry-after"]
            body = r.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["postgres"].startswith("no database connection for")
            assert body["pool"]["idle"] == 0
        loop.call_soon_threadsafe(freed.set)
        await asyncio.wrap_future(held)
        await wait_until(lambda: _is(healthz(srv.base_url), 200), 15, "/healthz is 200 again")
    finally:
        await asyncio.to_thread(srv.stop)


async def _is(status: Awaitable[int], wanted: int) -> bool:
    """Whether the awaited status is `wanted`."""
    return bool(await status == wanted)


@pytest.mark.timeout(150)
async def test_healthz_turns_unhealthy_while_postgres_is_unreachable(services: Services) -> None:
    """Postgres stopped: /healthz is 503 after db_unhealthy_after_s; started again: 200."""
    pg = PostgresServer().start()
    try:
        from db.migrate import SCHEMA_PATH

        conn = await asyncpg.connect(pg.url)
        try:
            await conn.execute(SCHEMA_PATH.read_text())
        finally:
            await conn.close()
        port = free_port()
        settings = settings_for(
            services,
            database_url=pg.url,
            public_url=f"http://127.0.0.1:{port}",
            db_acquire_timeout_s=0.5,
            db_unhealthy_after_s=1.0,
        )
        srv = HubServer(settings, port)
        await asyncio.to_thread(srv.start)
        try:
            assert await healthz(srv.base_url) == 200
            await asyncio.to_thread(pg.stop, "fast")
            await wait_until(lambda: _is(healthz(srv.base_url), 503), 20, "/healthz answers 503")
            await asyncio.to_thread(pg.start)
            await wait_until(lambda: _is(healthz(srv.base_url), 200), 20, "/healthz is 200 again")
        finally:
            await asyncio.to_thread(srv.stop)
    finally:
        await asyncio.to_thread(pg.destroy)


@pytest.mark.timeout(120)
async def test_sigterm_exits_promptly_while_requests_hold_every_connection(
    services: Services,
) -> None:
    """After subscribe churn, with requests stuck on a lock holding the pool, SIGTERM ends the process in bound."""
    web = WebProc(services).start()
    admin: asyncpg.Connection | None = None
    try:
        await asyncio.to_thread(web.wait_ready)
        async with httpx.AsyncClient(base_url=web.base_url, timeout=60) as http:
            bob = await sign_up(http)
            project_id = await make_project(http, bob)
            for i in range(5):
                await make_node(http, bob, project_id, x=i)
            # the finding's recipe, under the hub's default rate limit: 5 sockets x 100 pairs
            await asyncio.gather(
                *(churn(web.base_url, bob.token, project_id, 100, seed=s, pace_s=0.1)
                  for s in range(5))
            )  # fmt: skip
            admin = await asyncpg.connect(services.database_url)
            tx = admin.transaction()
            await tx.start()
            # every project listing now waits for this lock, holding its pooled connection
            await admin.execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
            stuck = [
                asyncio.create_task(http.get("/api/projects", headers=bob.headers))
                for _ in range(15)
            ]
            name = services.database_name

            async def pool_held() -> bool:
                waiting = [
                    s
                    for s in await busy_sessions(services.admin_url, name)
                    if s["wait_event_type"] == "Lock"
                ]
                return len(waiting) >= 10

            await wait_until(pool_held, 20, "ten requests wait on the lock")
            started = time.monotonic()
            code = await asyncio.to_thread(web.stop, 60)
            took = time.monotonic() - started
            await tx.rollback()
            for task in stuck:
                with contextlib.suppress(httpx.HTTPError):
                    await task
        # uvicorn gives in-flight requests 10 s, then the pool gets at most its close timeout
        assert took < 25, f"exit took {took:.1f} s:\n{web.log()[-3000:]}"
        assert code is not None and code != -9, web.log()[-3000:]
        assert await busy_sessions(services.admin_url, name) == []
    finally:
        if admin is not None:
            await admin.close()
        web.kill()
