"""The Redis bus: ONE pub/sub connection per web process, for every channel it follows.

The listener holds the connection, reconnects with jittered backoff and, on
each (re)connect, subscribes every channel again. Messages and SUBSCRIBE
confirmations go to the hub's callbacks; a confirmation of a channel that
already has a baseline means "something may have been published while we
were away", which the channel fills from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)


class Bus:
    """One Redis pub/sub connection: subscribe, unsubscribe, and a listener that routes."""

    def __init__(
        self,
        redis_url: str,
        *,
        on_message: Callable[[str, bytes], None],
        on_confirm: Callable[[str], None],
        on_lost: Callable[[], None],
        wanted: Callable[[], Iterable[str]],
        is_wanted: Callable[[str], bool],
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        self.redis_url = redis_url
        self.on_message = on_message
        self.on_confirm = on_confirm
        self.on_lost = on_lost
        #: the channel names that should be subscribed (asked again on every reconnect)
        self.wanted = wanted
        self.is_wanted = is_wanted
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        #: SUBSCRIBE / UNSUBSCRIBE go out in the order they were decided
        self._lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        #: set while the listener holds a live pub/sub connection (tests wait on it)
        self.ready = asyncio.Event()

    def start(self) -> None:
        """Open the connection in the background."""
        # a connection of its own: pub/sub takes a connection over for good.
        # keepalive finds a half-open TCP peer; unix sockets take no such option
        tcp = not self.redis_url.startswith("unix:")
        self._redis = Redis.from_url(self.redis_url, **({"socket_keepalive": True} if tcp else {}))
        self._listener = asyncio.create_task(self._listen(), name="hub-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._redis is not None:
            await self._redis.aclose()

    async def subscribe(self, name: str) -> None:
        """SUBSCRIBE one channel on the current connection, if there is one."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None or not self.is_wanted(name):
                return  # the listener subscribes every wanted channel when it (re)connects
            try:
                await pubsub.subscribe(name)
            except Exception as exc:
                # the listener sees the broken connection too, and resubscribes all
                log.warning("SUBSCRIBE %s failed: %r", name, exc)

    async def unsubscribe(self, name: str) -> None:
        """UNSUBSCRIBE a channel nobody here follows any more."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None or self.is_wanted(name):
                return  # reopened meanwhile: keep it
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(name)

    async def _listen(self) -> None:
        """Hold the pub/sub connection: reconnect with backoff, resubscribe, route messages."""
        assert self._redis is not None
        delay = self.backoff_initial_s
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                async with self._lock:
                    self._pubsub = pubsub
                    names = list(self.wanted())
                    if names:
                        await pubsub.subscribe(*names)
                self.ready.set()
                delay = self.backoff_initial_s
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._route(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub lost Redis (%r); reconnecting in %.2f s", exc, delay)
            finally:
                self.ready.clear()
                if self._pubsub is pubsub:
                    self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self.on_lost()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.backoff_max_s)

    def _route(self, message: dict[str, Any]) -> None:
        """One pub/sub message to the hub: a payload, or a SUBSCRIBE confirmation."""
        kind = message.get("type")
        raw_name = message.get("channel")
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        if kind == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                self.on_message(name, data)
        elif kind == "subscribe":
            self.on_confirm(name)
