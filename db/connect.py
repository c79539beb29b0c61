"""Open the Postgres pool behind `databases`, decoding jsonb to Python objects."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, KeysView, ValuesView
from typing import Any

import asyncpg
import databases
import msgspec


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


#: a `:name` parameter, as SQLAlchemy's text() finds them (`::type` casts are not one)
_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.lru_cache(maxsize=1024)
def positional(query: str) -> tuple[str, tuple[str, ...]]:
    """`query` with each `:name` turned into asyncpg's `$n`, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, query), tuple(names)


class Row:
    """A result row as `databases` presents one (`row["col"]`, `row.col`, `row._mapping`)."""

    __slots__ = ("_mapping",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._mapping = record

    def __getitem__(self, key: Any) -> Any:
        return self._mapping[key]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def keys(self) -> KeysView[str]:
        """The column names."""
        return self._mapping.keys()  # type: ignore[no-any-return]

    def values(self) -> ValuesView[Any]:
        """The column values."""
        return self._mapping.values()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping.keys())

    def __len__(self) -> int:
        return len(self._mapping)


class Database(databases.Database):
    """`databases.Database` that hands text queries straight to asyncpg.

    `databases` compiles every text query through SQLAlchemy on every call:
    the submit benchmark's profile put over a third of the web process's CPU
    there. Our queries are all plain SQL with `:name` parameters, so they are
    rewritten to `$n` once (cached) and run on the same pooled connection,
    inside the same transaction, with asyncpg's own prepared-statement cache.
    Anything other than a string still takes the library's path.
    """

    async def _raw(self, method: str, query: str, values: dict[str, Any] | None) -> Any:
        sql, names = positional(query)
        args = [(values or {})[name] for name in names]
        connection = self.connection()
        # the same lock `databases` takes: one query at a time on a connection
        async with connection, connection._query_lock:
            return await getattr(connection.raw_connection, method)(sql, *args)

    async def fetch_all(self, query: Any, values: dict[str, Any] | None = None) -> list[Any]:
        """All rows of `query`."""
        if not isinstance(query, str):
            return await super().fetch_all(query, values)
        return [Row(r) for r in await self._raw("fetch", query, values)]

    async def fetch_one(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        """The first row of `query`, or None."""
        if not isinstance(query, str):
            return await super().fetch_one(query, values)
        record = await self._raw("fetchrow", query, values)
        return None if record is None else Row(record)

    async def fetch_val(
        self, query: Any, values: dict[str, Any] | None = None, column: Any = 0
    ) -> Any:
        """One value of the first row of `query` (the first column unless `column`)."""
        if not isinstance(query, str):
            return await super().fetch_val(query, values, column=column)
        record = await self._raw("fetchrow", query, values)
        return None if record is None else record[column]

    async def execute(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        """Run `query` for its effect."""
        if not isinstance(query, str):
            return await super().execute(query, values)
        return await self._raw("execute", query, values)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, a round trip per query made outside a
    transaction (about a fifth of the web process's CPU under submit load).
    canvasflow leaves no session state behind: no session advisory locks (the
    migration lock is transaction-scoped), cursors, LISTEN or SET.
    """


def make_database(url: str, *, min_size: int = 1, max_size: int = 10) -> Database:
    """A `Database` (not yet connected) whose jsonb columns are Python objects."""
    return Database(
        asyncpg_url(url),
        init=_init_connection,
        reset=_keep_session,
        min_size=min_size,
        max_size=max_size,
    )
