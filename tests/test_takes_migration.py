"""Schema version 5 on a version 3 database: completed videos become takes, links get their ports."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from db.connect import make_database
from db.migrate import SCHEMA_PATH, SCHEMA_VERSION, migrate
from tests.support.services import Services, with_database

U, P = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a2"
PROMPT, IMAGE, VIDEO, IDLE = (f"00000000-0000-0000-0000-0000000000b{i}" for i in range(4))
JOB = "00000000-0000-0000-0000-0000000000c1"


async def test_version_3_database_gets_takes_and_ports(services: Services) -> None:
    """A completed video node keeps its video as one active take; prompt/image links get prompt/first_frame."""
    name = f"{urlsplit(services.database_url).path.lstrip('/')}_v3"
    admin = await asyncpg.connect(services.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(services.database_url, name)
    try:
        schema = SCHEMA_PATH.read_text()
        old = await asyncpg.connect(url)
        try:
            await old.execute(schema[: schema.index("-- Version 5")])
            key = f"videos/{P}/{JOB}.mp4"
            await old.execute(
                f"""
                INSERT INTO users (id, email, password_hash) VALUES ('{U}', 'a@example.com', 'x');
                INSERT INTO projects (id, owner_id, name, seq) VALUES ('{P}', '{U}', 'p', 9);
                INSERT INTO nodes (id, project_id, type, data, status, version) VALUES
                  ('{PROMPT}', '{P}', 'prompt', '{{"prompt": "a fox"}}', 'idle', 1),
                  ('{IMAGE}', '{P}', 'image', '{{}}', 'idle', 2),
                  ('{VIDEO}', '{P}', 'video', '{{"video_key": "{key}"}}', 'completed', 7),
                  ('{IDLE}', '{P}', 'video', '{{}}', 'idle', 3);
                INSERT INTO connections (project_id, source_id, target_id) VALUES
                  ('{P}', '{PROMPT}', '{VIDEO}'), ('{P}', '{IMAGE}', '{VIDEO}'),
                  ('{P}', '{PROMPT}', '{IMAGE}');
                INSERT INTO jobs (id, project_id, node_id, type, status, params, result) VALUES
                  ('{JOB}', '{P}', '{VIDEO}', 'video', 'completed',
                   '{{"prompt": "a fox", "seed": 42, "resolution": "720p", "duration": 4}}',
                   '{{"video_key": "{key}", "duration": 4}}');
                """
            )
        finally:
            await old.close()
        db = make_database(url)
        await db.connect()
        try:
            assert await migrate(db) == SCHEMA_VERSION == 5
            assert await migrate(db) == 5
            takes = await db.fetch_all("SELECT * FROM takes")
            assert len(takes) == 1
            take = takes[0]
            assert (str(take["node_id"]), str(take["job_id"]), take["media_key"]) == (
                VIDEO,
                JOB,
                key,
            )
            assert (take["mime_type"], take["seed"], take["idx"]) == ("video/mp4", 42, 0)
            active = await db.fetch_all("SELECT id, active_take_id FROM nodes ORDER BY id")
            assert {str(r["id"]): r["active_take_id"] for r in active} == {
                PROMPT: None,
                IMAGE: None,
                VIDEO: take["id"],
                IDLE: None,
            }
            links = await db.fetch_all("SELECT source_id, target_port FROM connections")
            # the prompt → image link fitted no port and went
            assert sorted((str(r["source_id"]), r["target_port"]) for r in links) == sorted(
                [(PROMPT, "prompt"), (IMAGE, "first_frame")]
            )
        finally:
            await db.disconnect()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()
