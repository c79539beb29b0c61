"""The database layer under cancellation: a task cancelled at any await point leaks nothing.

Each test drives the real pool against the run's Postgres, cancels the work
at every event-loop iteration it passes through (and at random moments of
0-4 ms, and twice in a row so the cleanup itself is interrupted), and then
checks the two things a leak breaks: every pooled connection can be held at
once, and Postgres shows no session of this database left `idle in
transaction` or still running a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest

from db.changes import Store
from db.connect import make_database
from db.events import read_snapshot
from db.users import create_user
from tests.support.services import Services
from tests.support.ws import add_node, move_node, new_project

if TYPE_CHECKING:
    from db.pool import Database

POOL_SIZE = 4

#: the work a test cancels: a coroutine function of no arguments
Work = Callable[[], Coroutine[Any, Any, object]]


@pytest.fixture
async def small_store(services: Services, store: Store) -> AsyncIterator[Store]:
    """A Store whose Database has its own small pool, so one leak is a large share of it."""
    db = make_database(services.database_url, min_size=1, max_size=POOL_SIZE)
    await db.connect()
    try:
        yield Store(db=db, redis=store.redis, namespace=store.namespace)
    finally:
        # a leaked connection makes an unbounded close wait forever
        await asyncio.wait_for(db.disconnect(), 30)


async def project_with_nodes(store: Store, nodes: int = 5) -> UUID:
    """A project holding a few nodes, so a snapshot makes several round trips."""
    user = await create_user(store.db, f"{random.getrandbits(64):x}@example.com", "x")
    project_id = await new_project(store, user.id)
    for i in range(nodes):
        await add_node(store, project_id, x=i)
    return project_id


async def iterations_of(work: Work) -> int:
    """How many event-loop iterations `work` takes when nothing cancels it."""
    task = asyncio.create_task(work())
    count = 0
    while not task.done():
        await asyncio.sleep(0)
        count += 1
    await task
    return count


def cancel_points(turns: int, spread: int = 300) -> list[int]:
    """Every one of the first 60 loop turns, then `spread` points across the rest of the run.

    While a query is on the wire the loop turns without the task moving, so a
    run takes thousands of turns: the first ones hold the acquire and BEGIN,
    the spread reaches every query, the COMMIT and the release.
    """
    points = set(range(min(60, turns + 2)))
    points.update(round(i * (turns + 10) / spread) for i in range(spread + 1))
    return sorted(points)


async def cancel_after(work: Work, iterations: int, again_after: int | None = None) -> None:
    """Run `work`, cancel it after `iterations` loop turns (and again `again_after` later)."""
    task = asyncio.create_task(work())
    for _ in range(iterations):
        await asyncio.sleep(0)
    task.cancel()
    if again_after is not None:
        for _ in range(again_after):
            await asyncio.sleep(0)
        task.cancel()
    await ended(task)


async def ended(task: asyncio.Task[object]) -> None:
    """Wait for a cancelled task to end; one still running after 5 s is stuck, a failure."""
    done, _ = await asyncio.wait([task], timeout=5)
    if not done:
        raise AssertionError(f"a cancelled task is stuck: {task.get_stack(limit=3)}")
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def cancel_at_random(work: Work, rng: random.Random) -> None:
    """Run `work` and cancel it 0-4 ms after it started."""
    task = asyncio.create_task(work())
    await asyncio.sleep(rng.uniform(0, 0.004))
    task.cancel()
    await ended(task)


async def assert_pool_whole(db: Database, size: int) -> None:
    """All `size` connections can be held at the same moment, each in a transaction of its own."""
    barrier = asyncio.Barrier(size)

    async def hold() -> None:
        async with db.transaction():
            assert await db.fetch_val("SELECT 1") == 1
            await barrier.wait()

    try:
        await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(size))), 10)
    except TimeoutError:
        raise AssertionError(
            f"only {barrier.n_waiting} of {size} pooled connections could be held at once"
        ) from None


async def assert_postgres_clean(services: Services) -> None:
    """No session of this database is idle in a transaction or still running a query."""
    conn = await asyncpg.connect(services.admin_url)
    try:
        # the admin URL names another database: ask about ours by name
        name = services.database_name
        rows = await conn.fetch(
            "SELECT state, left(query, 80) AS query FROM pg_stat_activity "
            "WHERE datname = $1 AND state IS DISTINCT FROM 'idle'",
            name,
        )
    finally:
        await conn.close()
    assert [dict(r) for r in rows] == []


async def test_read_snapshot_cancelled_at_every_await_point(
    services: Services, small_store: Store
) -> None:
    """read_snapshot cancelled after k loop turns, from 0 to past its end, leaks no connection."""
    project_id = await project_with_nodes(small_store)
    db = small_store.db

    async def work() -> object:
        return await read_snapshot(db, project_id)

    turns = await iterations_of(work)
    for k in cancel_points(turns):
        await cancel_after(work, k)
    await assert_pool_whole(db, POOL_SIZE)
    await assert_postgres_clean(services)


async def test_read_snapshot_cancelled_twice(services: Services, small_store: Store) -> None:
    """A second cancel landing in the cleanup of the first (rollback, release) leaks nothing."""
    project_id = await project_with_nodes(small_store)
    db = small_store.db

    async def work() -> object:
        return await read_snapshot(db, project_id)

    turns = await iterations_of(work)
    for k in cancel_points(turns, spread=60):
        for j in (0, 1, 2, 3, 5, 8, 13, 40):
            await cancel_after(work, k, again_after=j)
    await assert_pool_whole(db, POOL_SIZE)
    await assert_postgres_clean(services)


async def test_read_snapshot_cancelled_at_random_moments(
    services: Services, small_store: Store
) -> None:
    """500 cancels 0-4 ms into read_snapshot (the finding's recipe) leave the pool whole."""
    project_id = await project_with_nodes(small_store)
    db = small_store.db
    rng = random.Random(13)

    async def work() -> object:
        return await read_snapshot(db, project_id)

    for _ in range(500):
        await cancel_at_random(work, rng)
    await assert_pool_whole(db, POOL_SIZE)
    await assert_postgres_clean(services)


async def test_publish_change_cancelled_at_every_await_point(
    services: Services, small_store: Store
) -> None:
    """A change cancelled anywhere is all or nothing: no leak, and the seq matches the log."""
    project_id = await project_with_nodes(small_store, nodes=1)
    db = small_store.db
    node_id = await db.fetch_val("SELECT id FROM nodes WHERE project_id = :p", {"p": project_id})
    rng = random.Random(7)

    async def work() -> object:
        return await move_node(small_store, project_id, node_id, rng.random())

    turns = await iterations_of(work)
    for i, k in enumerate(cancel_points(turns)):
        await cancel_after(work, k)
        await cancel_after(work, k, again_after=i % 7)
    for _ in range(200):
        await cancel_at_random(work, rng)
    await assert_pool_whole(db, POOL_SIZE)
    await assert_postgres_clean(services)
    # a change either committed whole (seq bumped and logged) or not at all
    seq = await db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": project_id})
    logged = await db.fetch_val(
        "SELECT count(*) FROM events WHERE project_id = :p", {"p": project_id}
    )
    assert seq == logged
