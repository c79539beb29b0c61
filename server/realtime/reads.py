"""The hub's Postgres reads under a storm: queued behind a gate, identical ones shared.

When thousands of clients (re)connect at once, each handshake checks a
session and each subscribe checks membership and reads a snapshot. Raced for
the pool all at once, every read waited for a connection inside its own
`db_timeout_s`, and under load hundreds missed it (the bench's connect storm:
6-30 closes with 1013, 216-1,013 `unavailable`). So:

- at most `db_concurrency` hub reads run at once; the others wait their turn
  (FIFO) up to `db_queue_timeout_s`, and `db_timeout_s` bounds only the read
  itself: it still says "Postgres is stuck", no longer "Postgres is busy";
- identical reads in flight share one call (`SingleFlight`): a session's
  tabs share its lookup, a user's subscribes to one project their access
  check, and the subscribers of one project that wait for a snapshot share
  the next read, only a read not yet started, so that every subscriber
  joined the channel before the state it is sent was read (the hub's
  subscribe-before-snapshot rule).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ReadGate:
    """At most `concurrency` reads at once; a read waits its turn up to `queue_timeout_s`,
    then runs within `timeout_s`."""

    def __init__(self, concurrency: int, queue_timeout_s: float, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self.queue_timeout_s = queue_timeout_s
        self.timeout_s = timeout_s

    async def read(self, call: Awaitable[T]) -> T:
        """Run `call` when a slot is free (TimeoutError if none frees in time)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
        except BaseException:
            if inspect.iscoroutine(call):
                call.close()  # never started: nothing to clean up, and no "never awaited"
            raise
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        finally:
            self._slots.release()


class SingleFlight:
    """Concurrent calls for one key share the result of one call."""

    def __init__(self, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> None:
        self._spawn = spawn
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(
        self, key: Hashable, make: Callable[[], Awaitable[T]], join_started: bool = True
    ) -> T:
        """`make()`'s result, shared with every caller of the same key meanwhile.

        With `join_started=False` a caller only joins a call that has not started yet
        (one that starts at the loop's next turn): what it returns was read after the
        caller arrived."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            flight.add_done_callback(_retrieve)
            self._flights[key] = flight
            self._spawn(self._fly(key, flight, make, join_started))
        # a caller that gives up (its subscription ended) leaves the call to the others
        result: T = await asyncio.shield(flight)
        return result

    async def _fly(
        self,
        key: Hashable,
        flight: asyncio.Future[Any],
        make: Callable[[], Awaitable[Any]],
        join_started: bool,
    ) -> None:
        if not join_started:
            self._forget(key, flight)  # from here on, newcomers need a read of their own
        try:
            result = await make()
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
        else:
            flight.set_result(result)
        finally:
            self._forget(key, flight)

    def _forget(self, key: Hashable, flight: asyncio.Future[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared call's exception as seen: its callers (if any are left) report it."""
    if not future.cancelled():
        future.exception()
