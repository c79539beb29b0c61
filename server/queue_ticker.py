"""The queue ticker: every pending job's position and ETA, live, as ephemeral `job.progress` ticks.

Once a second one web process — whichever takes the tick's Redis key first
(`SET NX PX`, which Redis 6.2 has) — reads the first MAX_TICKED pending jobs
in queue order (one query, db/estimates.py) and publishes a tick for each job
whose position or whole-second ETA changed since the last tick it sent. The
ticks are droppable like progress: a client that connects later reads the
same figures in its snapshot or in GET /api/ai/jobs/{id}. A running job's
ticks come from its worker (tasks/video.py). It also keeps the pending-jobs
gauge by position band.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from common.keys import queue_ticker_key
from common.metrics import PENDING_JOBS
from db.changes import Store, publish_progress
from db.estimates import pending_count, pending_eta, pending_positions, running_load

log = logging.getLogger(__name__)

TICK_S = 1.0
#: pending jobs ticked per pass: those further back hear of their place from their snapshot
MAX_TICKED = 200
#: the gauge's position bands: (label, first position, last position)
_BANDS = (("1", 1, 1), ("2-5", 2, 5), ("6-20", 6, 20), ("21+", 21, None))


class QueueTicker:
    """Publishes queue positions and ETAs of pending jobs while it runs."""

    def __init__(self, store: Store, slots: int, tick_s: float = TICK_S) -> None:
        self.store = store
        self.slots = slots
        self.tick_s = tick_s
        #: what each pending job was last told: (position, ETA in whole seconds)
        self.sent: dict[UUID, tuple[int, int | None]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background until `stop()`."""
        self.task = asyncio.create_task(self.run(), name="queue-ticker")

    async def stop(self) -> None:
        """Stop ticking."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def run(self) -> None:
        """Tick every `tick_s` while this process holds the tick; survive every outage."""
        while True:
            try:
                if await self.take_tick():
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres or Redis away: the next tick tries again
                log.warning("queue tick failed: %r", exc)
            await asyncio.sleep(self.tick_s)

    async def take_tick(self) -> bool:
        """True when this process publishes this tick (no other took it)."""
        key = queue_ticker_key(self.store.namespace)
        px = max(1, int(self.tick_s * 900))
        return bool(await self.store.redis.set(key, b"1", px=px, nx=True))

    async def tick(self) -> int:
        """Publish what changed for the first MAX_TICKED pending jobs; returns ticks sent."""
        db = self.store.db
        rows = await pending_positions(db, MAX_TICKED)
        running = await running_load(db) if rows else (0, 0.0)
        total = len(rows) if len(rows) < MAX_TICKED else await pending_count(db)
        for label, first, last in _BANDS:
            upper = total if last is None else min(last, total)
            PENDING_JOBS.labels(label).set(max(0, upper - first + 1))
        sent = 0
        now: dict[UUID, tuple[int, int | None]] = {}
        for r in rows:
            position = int(r["position"])
            mean = None if r["mean_s"] is None else float(r["mean_s"])
            eta = pending_eta(mean, position, float(r["ahead_s"]), running, self.slots)
            figures = (position, None if eta is None else round(eta))
            now[r["id"]] = figures
            if self.sent.get(r["id"]) == figures:
                continue
            await publish_progress(
                self.store, r["project_id"], r["id"], 0.0, queue_position=position, eta_s=eta
            )
            sent += 1
        self.sent = now
        return sent
