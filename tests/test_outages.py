"""Dependency outages (F4): Postgres or Redis down is a 503 `unavailable`, never a 500.

Each test runs its own web server against a private Redis or Postgres that it
stops and starts, so the shared services of the run stay up.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.accounts import sign_up
from tests.support.api import assert_error
from tests.support.procs import PostgresServer, RedisServer
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for

PASSWORD = "correct horse"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped at the end."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, destroyed at the end."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.destroy()


def _server(services: Services, **overrides: object) -> ServerThread:
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        **overrides,
    )
    return ServerThread(settings, port)


def assert_unavailable(response: httpx.Response) -> None:
    """The response is the outage answer: 503 `unavailable` with a Retry-After."""
    assert_error(response, 503, "unavailable")
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.timeout(120)
async def test_log_in_and_sign_up_work_with_redis_down(
    services: Services, private_redis: RedisServer
) -> None:
    """With Redis stopped, the right password logs in, a wrong one is 401, sign up works."""
    with _server(services, redis_url=private_redis.url) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as c:
            alice = await sign_up(c, "alice@example.com")
            private_redis.stop()
            r = await c.post("/api/auth/login", json={"email": alice.email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            r = await c.post("/api/auth/login", json={"email": alice.email, "password": "nope"})
            assert_error(r, 401, "invalid_credentials")
            bob = await sign_up(c, "bob@example.com")
            r = await c.get("/api/projects", headers=bob.headers)
            assert r.status_code == 200, r.text


@pytest.mark.timeout(120)
async def test_the_limiter_keeps_limiting_in_process_with_redis_down(
    services: Services, private_redis: RedisServer
) -> None:
    """With Redis stopped, failed log ins are still counted (in the process) and limited."""
    with _server(services, redis_url=private_redis.url, login_attempts_per_15min=3) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as c:
            alice = await sign_up(c, "alice@example.com")
            private_redis.stop()
            for _ in range(3):
                r = await c.post(
                    "/api/auth/login", json={"email": alice.email, "password": "wrong!!!"}
                )
                assert_error(r, 401, "invalid_credentials")
            r = await c.post("/api/auth/login", json={"email": alice.email, "password": "wrong!!!"})
            assert_error(r, 429, "too_many_attempts")
            assert int(r.headers["retry-after"]) > 0


@pytest.mark.timeout(120)
async def test_postgres_down_is_503_on_every_route_kind_then_recovers(
    services: Services, private_postgres: PostgresServer
) -> None:
    """With Postgres stopped, authenticated routes, log in and sign up are 503; then they work."""
    with _server(services, database_url=private_postgres.url) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as c:
            alice = await sign_up(c, "alice@example.com")
            r = await c.post("/api/projects", json={"name": "p"}, headers=alice.headers)
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            private_postgres.stop("fast")
            for _ in range(2):  # the first finds the pooled connection dead, the next no server
                assert_unavailable(await c.get("/api/projects", headers=alice.headers))
                assert_unavailable(await c.get(f"/api/projects/{pid}/nodes", headers=alice.headers))
                assert_unavailable(
                    await c.post("/api/projects", json={"name": "q"}, headers=alice.headers)
                )
                assert_unavailable(
                    await c.post(
                        "/api/auth/login", json={"email": alice.email, "password": PASSWORD}
                    )
                )
                assert_unavailable(
                    await c.post(
                        "/api/auth/signup",
                        json={"email": "bob@example.com", "password": PASSWORD},
                    )
                )
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.json()["checks"]["postgres"] != "ok"
            private_postgres.start()
            r = await c.get("/api/projects", headers=alice.headers)
            assert r.status_code == 200 and [p["id"] for p in r.json()] == [pid]
