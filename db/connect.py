"""Open the Postgres pool behind `databases`, decoding jsonb to Python objects."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from databases import Database


def asyncpg_url(url: str) -> str:
    """Return `url` with the asyncpg driver named, as `databases` needs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb otherwise comes back as a JSON string (see FACTS.md)
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


def make_database(url: str, *, min_size: int = 1, max_size: int = 10) -> Database:
    """A `databases.Database` (not yet connected) whose jsonb columns are Python objects."""
    return Database(asyncpg_url(url), init=_init_connection, min_size=min_size, max_size=max_size)
