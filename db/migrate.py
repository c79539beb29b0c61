"""Apply schema.sql idempotently; safe when many processes start at once."""

from __future__ import annotations

from pathlib import Path

from db.pool import Database

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
SCHEMA_VERSION = 6
# any constant shared by every canvasflow process; serialises concurrent migrations
_MIGRATION_LOCK_ID = 0x63616E76


async def migrate(db: Database) -> int:
    """Bring the schema up to date and return its version."""
    sql = SCHEMA_PATH.read_text()
    async with db.connection() as conn:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
            await conn.execute(sql)
        version: int = await conn.fetchval("SELECT max(version) FROM schema_version")
    return version
