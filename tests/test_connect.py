"""db.connect and db.pool: text queries keep their meaning; transactions, timeouts, close."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import pytest

from db.changes import Store
from db.connect import Database, DatabaseUnavailable, Row, make_database, positional
from tests.support.services import Services, free_port


def test_named_parameters_become_positional() -> None:
    """Each distinct name gets one number, in order of first use; casts are left alone."""
    sql, names = positional(
        "UPDATE nodes SET data = COALESCE(CAST(:d AS jsonb), '{}'::jsonb), x = :x "
        "WHERE id = :id AND x <> :x"
    )
    assert sql == (
        "UPDATE nodes SET data = COALESCE(CAST($1 AS jsonb), '{}'::jsonb), x = $2 "
        "WHERE id = $3 AND x <> $2"
    )
    assert names == ("d", "x", "id")
    assert positional("SELECT 1") == ("SELECT 1", ())


async def test_rows_read_like_databases_records(store: Store) -> None:
    """Rows answer by key and `_mapping`; fetch_val and execute work; None when empty."""
    db = store.db
    row = await db.fetch_one(
        "SELECT CAST(:a AS int) AS a, :b AS b, CAST(:a AS int) + 1 AS c", {"a": 1, "b": "x"}
    )
    assert row is not None
    assert (row["a"], row["b"], dict(row._mapping)) == (1, "x", {"a": 1, "b": "x", "c": 2})
    assert list(row) == ["a", "b", "c"] and len(row) == 3
    assert await db.fetch_one("SELECT 1 WHERE false") is None
    assert await db.fetch_val("SELECT CAST(:v AS text)", {"v": "y"}) == "y"
    assert await db.fetch_val("SELECT 1 WHERE false") is None
    rows = await db.fetch_all("SELECT g FROM generate_series(1, :n) AS g", {"n": 3})
    assert [r["g"] for r in rows] == [1, 2, 3]


async def test_queries_join_the_open_transaction(store: Store) -> None:
    """A rolled-back transaction takes the raw queries made inside it with it."""
    db = store.db
    email = f"{uuid4()}@example.com"
    try:
        async with db.transaction():
            await db.execute(
                "INSERT INTO users (email, password_hash) VALUES (:e, 'x')", {"e": email}
            )
            seen = await db.fetch_val("SELECT count(*) FROM users WHERE email = :e", {"e": email})
            assert seen == 1
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await db.fetch_val("SELECT count(*) FROM users WHERE email = :e", {"e": email}) == 0
    assert isinstance(await db.fetch_one("SELECT 1 AS one"), Row)


async def test_nested_transaction_is_a_savepoint(store: Store) -> None:
    """An inner transaction that fails rolls back to its savepoint; the outer one commits."""
    db = store.db
    outer, inner = f"{uuid4()}@example.com", f"{uuid4()}@example.com"
    async with db.transaction():
        await db.execute("INSERT INTO users (email, password_hash) VALUES (:e, 'x')", {"e": outer})
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute(
                    "INSERT INTO users (email, password_hash) VALUES (:e, 'x')", {"e": inner}
                )
                raise RuntimeError("roll back the savepoint")
    emails = await db.fetch_all(
        "SELECT email FROM users WHERE email = ANY(CAST(:e AS text[]))", {"e": [outer, inner]}
    )
    assert [r["email"] for r in emails] == [outer]


async def test_a_task_started_inside_a_transaction_uses_its_own_connection(store: Store) -> None:
    """Only the task that opened a transaction runs on its connection: others cannot see it."""
    db = store.db
    email = f"{uuid4()}@example.com"
    async with db.transaction():
        await db.execute("INSERT INTO users (email, password_hash) VALUES (:e, 'x')", {"e": email})
        count = "SELECT count(*) FROM users WHERE email = :e"
        assert await db.fetch_val(count, {"e": email}) == 1
        # a child task inherits the context variable, but not the connection
        assert await asyncio.create_task(db.fetch_val(count, {"e": email})) == 0
    assert await db.fetch_val(count, {"e": email}) == 1


async def held_connections(
    db: Database, count: int
) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    """`count` tasks each holding a pooled connection until the returned event is set."""
    freed = asyncio.Event()
    holding = asyncio.Semaphore(0)

    async def hold() -> None:
        async with db.connection():
            holding.release()
            await freed.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    for _ in range(count):
        await holding.acquire()
    return freed, tasks


async def test_a_starved_pool_answers_unavailable_within_the_acquire_timeout(
    services: Services,
) -> None:
    """With every connection held, a query fails with DatabaseUnavailable after the timeout."""
    db = make_database(services.database_url, max_size=2, acquire_timeout_s=0.2)
    await db.connect()
    try:
        freed, holders = await held_connections(db, 2)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="no database connection free"):
            await db.fetch_val("SELECT 1")
        waited = time.monotonic() - started
        assert db.failing_since is not None and db.failing_since <= started + 0.01
        freed.set()
        await asyncio.gather(*holders)
        assert await db.fetch_val("SELECT 1") == 1
        assert db.failing_since is None
        # generous: the point is that it is bounded, not how fast the machine is
        assert waited < 5
    finally:
        await db.disconnect()


async def test_an_unreachable_server_is_database_unavailable() -> None:
    """A server nobody answers for is DatabaseUnavailable, not an OSError, and starts the clock."""
    db = make_database(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0, acquire_timeout_s=1
    )
    with pytest.raises(DatabaseUnavailable, match="not open"):
        await db.fetch_val("SELECT 1")
    await db.connect()
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot connect"):
            await db.fetch_val("SELECT 1")
        assert db.failing_since is not None
    finally:
        await db.disconnect()


async def test_disconnect_is_bounded_when_a_task_never_gives_its_connection_back(
    services: Services,
) -> None:
    """disconnect() terminates a connection still held after close_timeout_s instead of waiting."""
    db = make_database(services.database_url, close_timeout_s=0.3)
    await db.connect()
    _, (holder,) = await held_connections(db, 1)
    started = time.monotonic()
    await asyncio.wait_for(db.disconnect(), 10)
    assert time.monotonic() - started < 5
    assert not db.is_connected
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
