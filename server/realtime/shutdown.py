"""SIGTERM / SIGINT: every client hears 1001 "going away" before the server stops.

uvicorn answers SIGTERM by closing websockets with 1012 from under the app;
wrapping its signal handler lets the hub close them first with the 1001 the
protocol promises, give the close frames a moment, then hand over to uvicorn.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import Any


class SignalRelay:
    """Wraps the server's SIGINT/SIGTERM handlers with `before`, run on the event loop first."""

    def __init__(
        self,
        before: Callable[[], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
    ) -> None:
        self.before = before
        self.spawn = spawn
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Wrap the current handlers (the main thread only: signals are delivered there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            # only wrap a server's own handler (uvicorn's), never Python's defaults
            if not callable(previous) or previous is signal.default_int_handler:
                continue
            self._previous[sig] = previous

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.spawn, self._relay(previous, signum))

            signal.signal(sig, handler)

    def restore(self) -> None:
        """Put the wrapped handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    async def _relay(self, previous: Callable[[int, Any], Any], signum: int) -> None:
        await self.before()
        previous(signum, None)
