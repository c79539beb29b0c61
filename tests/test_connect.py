"""db.connect: text queries handed to asyncpg keep their meaning."""

from __future__ import annotations

from uuid import uuid4

from db.changes import Store
from db.connect import Row, positional


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
