"""The Postgres pool: queries, transactions and connections that survive cancellation.

Every connection is taken with `pool.acquire(timeout=...)` and given back in a
`finally` through `pool.release`, which asyncpg runs under `asyncio.shield`:
a task cancelled at any await point (while waiting for a connection, in the
middle of a query, during BEGIN, COMMIT or ROLLBACK, or during the release
itself) still hands its connection back. asyncpg's release first waits for a
cancelled query's CancelRequest to finish, then rolls back any transaction
still open, and terminates the connection when either fails or outlasts
`release_timeout_s`: a connection goes back to the pool clean or not at all.

A transaction binds its connection to the task that opened it (a context
variable carrying the task, so a task started inside the transaction does not
inherit it): every query that task makes inside the `async with` runs on that
connection, and a nested `transaction()` becomes a savepoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, KeysView, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

#: what a lost, refused or shut-down server raises: all of it means "try again later"
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08: connection failures
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, statement timeout
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


class DatabaseUnavailable(Exception):
    """No working database connection could be had in time; answer 503 `unavailable`."""


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
    """A result row: `row["col"]`, `row.col`, and `row._mapping` (the asyncpg Record)."""

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


@dataclass(frozen=True, slots=True)
class PoolStats:
    """How the pool stands: connections open, free, the cap, and tasks waiting for one."""

    size: int
    idle: int
    max_size: int
    waiting: int


@dataclass(frozen=True, slots=True)
class _Binding:
    """The open transaction of one task: its Database and its connection."""

    database: Database
    task: asyncio.Task[Any] | None
    conn: asyncpg.Connection


_BOUND: ContextVar[_Binding | None] = ContextVar("canvasflow_transaction", default=None)

Init = Callable[[asyncpg.Connection], Awaitable[None]]


class Database:
    """A pool of asyncpg connections with the query surface the db/ modules use."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout_s: float = 5.0,
        release_timeout_s: float = 5.0,
        close_timeout_s: float = 10.0,
        init: Init | None = None,
        reset: Init | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.acquire_timeout_s = acquire_timeout_s
        self.release_timeout_s = release_timeout_s
        self.close_timeout_s = close_timeout_s
        self._init = init
        self._reset = reset
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._waiting = 0
        #: when a connection was last handed out, and since when none could be
        self.last_acquired_at: float | None = None
        self.failing_since: float | None = None

    # -- life cycle

    async def connect(self) -> None:
        """Open the pool (its first `min_size` connections)."""
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self.min_size,
            max_size=self.max_size,
            init=self._init,
            reset=self._reset,
        )
        self.last_acquired_at = self._clock()

    async def disconnect(self) -> None:
        """Close the pool; connections still held after close_timeout_s are terminated."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # Pool.close() waits for every held connection to come back, which a
            # stuck task may never do; asyncpg terminates the pool when close is
            # cancelled, which is what the timeout does
            await asyncio.wait_for(pool.close(), self.close_timeout_s)
        except TimeoutError:
            log.warning(
                "closing the database pool took over %.0f s: terminated the connections "
                "still in use",
                self.close_timeout_s,
            )
            pool.terminate()

    def clock(self) -> float:
        """The monotonic clock `last_acquired_at` and `failing_since` are read on."""
        return self._clock()

    @property
    def is_connected(self) -> bool:
        """Whether connect() has run and disconnect() has not."""
        return self._pool is not None

    def stats(self) -> PoolStats:
        """The pool's size, free connections, cap, and tasks waiting for a connection."""
        pool = self._pool
        if pool is None:
            return PoolStats(0, 0, self.max_size, self._waiting)
        return PoolStats(pool.get_size(), pool.get_idle_size(), self.max_size, self._waiting)

    # -- connections

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection of this task's own, given back on exit whatever happens."""
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the database pool is not open")
        started = self._clock()
        self._waiting += 1
        try:
            conn = await pool.acquire(timeout=self.acquire_timeout_s)
        except TimeoutError as exc:
            self._failed(started)
            raise DatabaseUnavailable(
                f"no database connection free within {self.acquire_timeout_s:g} s"
            ) from exc
        except (*_UNREACHABLE, asyncpg.InterfaceError) as exc:
            # InterfaceError here: the pool is closing (shutdown)
            self._failed(started)
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
        finally:
            self._waiting -= 1
        # no await between the acquire and the try: a cancel cannot fall between them
        self.last_acquired_at = self._clock()
        self.failing_since = None
        try:
            yield conn
        finally:
            await self._release(pool, conn)

    async def _release(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        """Give `conn` back (shielded by asyncpg); a failed reset has already terminated it."""
        try:
            await pool.release(conn, timeout=self.release_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("a database connection could not be reset and was closed: %r", exc)

    def _failed(self, started: float) -> None:
        if self.failing_since is None or started < self.failing_since:
            self.failing_since = started

    async def probe(self, timeout_s: float) -> None:
        """Get a connection and run `SELECT 1` within `timeout_s`; DatabaseUnavailable if not."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.fetch_val("SELECT 1")
        except TimeoutError as exc:
            self._failed(self._clock() - timeout_s)
            raise DatabaseUnavailable(f"no database answer within {timeout_s:g} s") from exc

    # -- transactions

    def _bound(self) -> _Binding | None:
        """This task's open transaction on this Database, if any."""
        binding = _BOUND.get()
        if (
            binding is None
            or binding.database is not self
            or binding.task is not asyncio.current_task()
        ):
            return None
        return binding

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AsyncIterator[None]:
        """A transaction: this task's queries inside it share one connection; commit on exit.

        `isolation` is asyncpg's: `read_committed` (Postgres' default),
        `repeatable_read` or `serializable`. Inside another transaction of the
        same task it is a savepoint (and takes the outer one's isolation).
        """
        outer = self._bound()
        if outer is not None:
            async with _unavailable_on_loss(), outer.conn.transaction():
                yield
            return
        async with self.connection() as conn:
            tx = conn.transaction(isolation=isolation, readonly=readonly)
            # Entered by hand so that only success runs asyncpg's exit (COMMIT). On an
            # exception or a cancel the transaction is left open for release, which
            # runs under asyncio.shield: it waits for a cancelled query to stop, then
            # rolls back (silently: the transaction is a managed one). A ROLLBACK
            # awaited here could itself be cancelled by a second cancel.
            async with _unavailable_on_loss():
                await tx.__aenter__()
            token = _BOUND.set(_Binding(self, asyncio.current_task(), conn))
            try:
                yield
            finally:
                _BOUND.reset(token)
            async with _unavailable_on_loss():
                await tx.__aexit__(None, None, None)

    # -- queries

    async def _run(self, method: str, query: str, values: dict[str, Any] | None) -> Any:
        sql, names = positional(query)
        args = [(values or {})[name] for name in names]
        bound = self._bound()
        if bound is not None:
            async with _unavailable_on_loss():
                return await getattr(bound.conn, method)(sql, *args)
        async with self.connection() as conn, _unavailable_on_loss():
            return await getattr(conn, method)(sql, *args)

    async def fetch_all(self, query: str, values: dict[str, Any] | None = None) -> list[Row]:
        """All rows of `query`."""
        return [Row(r) for r in await self._run("fetch", query, values)]

    async def fetch_one(self, query: str, values: dict[str, Any] | None = None) -> Row | None:
        """The first row of `query`, or None."""
        record = await self._run("fetchrow", query, values)
        return None if record is None else Row(record)

    async def fetch_val(
        self, query: str, values: dict[str, Any] | None = None, column: int | str = 0
    ) -> Any:
        """One value of the first row of `query` (the first column unless `column`)."""
        record = await self._run("fetchrow", query, values)
        return None if record is None else record[column]

    async def execute(self, query: str, values: dict[str, Any] | None = None) -> Any:
        """Run `query` for its effect; asyncpg's status string (`UPDATE 1`)."""
        return await self._run("execute", query, values)


@contextlib.asynccontextmanager
async def _unavailable_on_loss() -> AsyncIterator[None]:
    """A server lost mid-query becomes DatabaseUnavailable; SQL errors pass as they are."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise DatabaseUnavailable(f"lost the database connection: {exc!r}") from exc
