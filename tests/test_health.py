"""Liveness, readiness, schema migration and the embedded services."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from db.connect import make_database
from db.migrate import SCHEMA_PATH, SCHEMA_VERSION, migrate
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for, with_database


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    """A healthy process answers both probes with 200."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_readyz_is_503_when_redis_is_down(services: Services) -> None:
    """With Redis unreachable the process is alive but not ready, and says which check failed."""
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    srv = ServerThread(settings_for(services, redis_url=dead_redis), port)
    await asyncio.to_thread(srv.start)
    try:
        async with httpx.AsyncClient(base_url=srv.base_url) as c:
            assert (await c.get("/healthz")).status_code == 200
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["postgres"] == "ok"
            assert r.json()["checks"]["redis"].startswith("error")
    finally:
        await asyncio.to_thread(srv.stop)


async def test_migration_is_idempotent_and_concurrent(services: Services) -> None:
    """Applying the schema from several processes at once is safe and records one version."""
    dbs = [make_database(services.database_url) for _ in range(4)]
    for db in dbs:
        await db.connect()
    try:
        versions = await asyncio.gather(*(migrate(db) for db in dbs))
        assert versions == [SCHEMA_VERSION] * 4
        # one row per version, however many processes migrated
        rows = await dbs[0].fetch_all("SELECT version FROM schema_version")
        recorded = [r["version"] for r in rows]
        assert len(recorded) == len(set(recorded)) and max(recorded) == SCHEMA_VERSION
    finally:
        for db in dbs:
            await db.disconnect()


async def test_version_1_database_is_migrated_to_the_current_schema(services: Services) -> None:
    """A version 1 database migrates to json, then to versioned rows, owner members and takes."""
    name = f"{services.database_name}_v1"
    admin = await asyncpg.connect(services.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(services.database_url, name)
    try:
        current = SCHEMA_PATH.read_text()
        version_1 = current[: current.index("-- Version 2")].replace(
            "data json NOT NULL", "data jsonb NOT NULL"
        )
        old = await asyncpg.connect(url)
        try:
            await old.execute(version_1)
            await old.execute(
                "INSERT INTO users (id, email, password_hash) VALUES "
                "('00000000-0000-0000-0000-000000000001', 'a@example.com', 'x');"
                "INSERT INTO projects (id, owner_id, name, seq) VALUES "
                "('00000000-0000-0000-0000-000000000002', "
                "'00000000-0000-0000-0000-000000000001', 'p', 1);"
                "INSERT INTO events (project_id, seq, kind, data) VALUES "
                "('00000000-0000-0000-0000-000000000002', 1, 'node.created', "
                """'{"node": {"id": "n", "x": 1.5}}');"""
            )
        finally:
            await old.close()
        db = make_database(url)
        await db.connect()
        try:
            assert await migrate(db) == SCHEMA_VERSION == 5
            assert await migrate(db) == 5  # and again, as every start does
            kind = await db.fetch_val(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'events' AND column_name = 'data'"
            )
            assert kind == "json"
            # version 3: the log of old event shapes is emptied (resumes get a snapshot),
            # the project keeps its seq, and nodes and connections have a version
            assert await db.fetch_val("SELECT count(*) FROM events") == 0
            assert await db.fetch_val("SELECT seq FROM projects") == 1
            versioned = await db.fetch_val(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name IN ('nodes', 'connections') AND column_name = 'version'"
            )
            assert versioned == 2
            # version 4: the project's owner_id became its owner member
            members = await db.fetch_all("SELECT project_id, user_id, role FROM project_members")
            assert [(str(m["user_id"]), m["role"]) for m in members] == [
                ("00000000-0000-0000-0000-000000000001", "owner")
            ]
        finally:
            await db.disconnect()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


@pytest.mark.integration
def test_embedded_services_start_and_answer(tmp_path: Path) -> None:
    """pgserver and the bundled redis-server start from nothing and answer queries."""
    import redis

    from server import embedded

    pg_url = embedded.start_postgres(tmp_path)
    redis_url = embedded.start_redis(tmp_path)

    async def query() -> int:
        conn = await asyncpg.connect(pg_url)
        try:
            return int(await conn.fetchval("SELECT 41 + 1"))
        finally:
            await conn.close()

    assert asyncio.run(query()) == 42
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        # a second start reuses the running server instead of failing
        assert embedded.start_redis(tmp_path) == redis_url
    finally:
        client.close()
