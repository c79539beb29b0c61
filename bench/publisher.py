"""The event source: a process that changes projects the way the worker does, through the
real rule (db.changes.publish_change: one transaction, seq bump, event log, then PUBLISH),
or publishes ephemeral progress ticks (db.changes.publish_progress).

Every change is a node data patch `{"t": <monotonic stamp>}` taken just before the
publish_change call, so a client's receive time minus `t` is the full publish → receive
latency on one clock.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

from bench.child import Child, command_queue

HARD_LIMIT_S = 900.0


@dataclass(frozen=True)
class PublisherConfig:
    """Where the publisher's Store points."""

    database_url: str
    redis_url: str
    namespace: str


async def _paced(count: int, rate: float | None, budget_s: float) -> Any:
    """Yield 0..count-1 at `rate` per second (None: as fast as the caller goes), within budget."""
    t0 = time.monotonic()
    for i in range(count):
        if time.monotonic() - t0 > budget_s:
            return
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield i


async def _run(config: PublisherConfig, conn: Connection) -> None:
    import msgspec
    from redis.asyncio import Redis

    from common.protocol.events import NodeUpdated, encode_bus, event_of
    from db import nodes as node_queries
    from db.changes import Store, publish_change, publish_progress, publish_raw
    from db.connect import make_database
    from db.projects import current_seq

    db = make_database(config.database_url)
    await db.connect()
    redis = Redis.from_url(config.redis_url)
    store = Store(db=db, redis=redis, namespace=config.namespace)
    commands = command_queue(conn)

    async def change(project_id: UUID, node_id: UUID) -> None:
        t = time.monotonic()

        async def apply(seq: int) -> NodeUpdated:
            # what PATCH /api/nodes/{id} does: merge keys into the node's data
            node = await node_queries.update_node(
                store.db, node_id, version=seq, data_patch={"t": t}
            )
            assert node is not None
            return NodeUpdated(node=node)

        await publish_change(store, project_id, apply)

    async def changes(
        targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """Node updates round-robin over `targets` (project_id, node_id)."""
        ids = [(UUID(p), UUID(n)) for p, n in targets]
        durations: list[float] = []
        # one in flight per project: a project's changes are serialised by its row lock anyway
        in_flight: dict[UUID, asyncio.Task[None]] = {}
        t0 = time.monotonic()
        sent = 0
        async for i in _paced(count, rate, budget_s):
            project_id, node_id = ids[i % len(ids)]
            previous = in_flight.get(project_id)
            if previous is not None:
                await previous
            start = time.monotonic()
            task = asyncio.create_task(change(project_id, node_id))
            task.add_done_callback(functools.partial(_note_duration, durations, start))
            in_flight[project_id] = task
            sent += 1
            if len(ids) == 1:
                await task
        await asyncio.gather(*in_flight.values())
        return {"first": t0, "last": time.monotonic(), "count": sent, "durations_s": durations}

    async def raw(
        targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """The same node-updated events as `changes`, straight to Redis (publish_raw): no
        transaction, no log. The hub's share of a delivery without Postgres's. The project's
        seq is moved past them at the end, so durable changes carry on after them."""
        ids = [(UUID(p), UUID(n)) for p, n in targets]
        seqs: dict[UUID, int] = {}
        nodes: dict[UUID, Any] = {}
        for project_id, node_id in ids:
            seqs[project_id] = int(await current_seq(store.db, project_id) or 0)
            nodes[node_id] = await node_queries.get_node(store.db, node_id)
        t0 = time.monotonic()
        sent = 0
        async for i in _paced(count, rate, budget_s):
            project_id, node_id = ids[i % len(ids)]
            seqs[project_id] += 1
            node = msgspec.structs.replace(
                nodes[node_id], data={**nodes[node_id].data, "t": time.monotonic()}
            )
            event = event_of(project_id, seqs[project_id], NodeUpdated(node=node))
            await publish_raw(store, project_id, encode_bus(event))
            sent += 1
        for project_id, seq in seqs.items():
            await store.db.execute(
                "UPDATE projects SET seq = :seq WHERE id = :id", {"seq": seq, "id": project_id}
            )
        return {"first": t0, "last": time.monotonic(), "count": sent}

    async def bare_writes(project_id: str, count: int) -> dict[str, Any]:
        """The limit of one project's changes: publish_change's two writes (the seq bump under
        the row lock, the event-log INSERT) in one transaction each, back to back, with no
        change applied and nothing published."""
        pid = UUID(project_id)
        t0 = time.monotonic()
        for _ in range(count):
            async with store.db.transaction():
                seq = await store.db.fetch_val(
                    "UPDATE projects SET seq = seq + 1, updated_at = now() WHERE id = :id "
                    "RETURNING seq",
                    {"id": pid},
                )
                await store.db.execute(
                    "INSERT INTO events (project_id, seq, kind, data) "
                    "VALUES (:project_id, :seq, 'bench.bare', CAST(CAST(:data AS text) AS json))",
                    {"project_id": pid, "seq": seq, "data": '{"t": 0}'},
                )
        return {"first": t0, "last": time.monotonic(), "count": count}

    async def progress(
        targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """Progress ticks round-robin over `targets` (project_id, job_id); tick k of a job
        carries progress k/1000, so (project, progress) names one tick."""
        ids = [(UUID(p), UUID(j)) for p, j in targets]
        sent: list[tuple[str, float, float]] = []
        t0 = time.monotonic()
        async for i in _paced(count, rate, budget_s):
            project_id, job_id = ids[i % len(ids)]
            value = round((i // len(ids) + 1) / 1000, 3)
            t = time.monotonic()
            await publish_progress(store, project_id, job_id, value)
            sent.append((str(project_id), value, t))
        return {"first": t0, "last": time.monotonic(), "count": len(sent), "sent": sent}

    conn.send(("ready", None))
    deadline = time.monotonic() + HARD_LIMIT_S
    try:
        while time.monotonic() < deadline:
            try:
                command = await asyncio.wait_for(commands.get(), 5)
            except TimeoutError:
                continue
            if command[0] == "changes":
                conn.send(("done", await changes(*command[1:])))
            elif command[0] == "bare_writes":
                conn.send(("done", await bare_writes(*command[1:])))
            elif command[0] == "raw":
                conn.send(("done", await raw(*command[1:])))
            elif command[0] == "progress":
                conn.send(("done", await progress(*command[1:])))
            elif command[0] == "stop":
                break
    finally:
        await redis.aclose()
        await db.disconnect()


def _note_duration(durations: list[float], start: float, _task: asyncio.Task[Any]) -> None:
    """A change task's done callback: how long it took since `start`."""
    durations.append(time.monotonic() - start)


def publisher_main(config: PublisherConfig, conn: Connection) -> None:
    """Entry point of the publisher process (spawned)."""
    try:
        import uvloop

        uvloop.run(_run(config, conn))
    except ImportError:
        asyncio.run(_run(config, conn))


class Publisher(Child):
    """The publisher process; a context manager so it always ends."""

    name = "publisher"

    def __init__(self, config: PublisherConfig) -> None:
        super().__init__(publisher_main, config)

    def _run(self, command: tuple[Any, ...], timeout_s: float) -> dict[str, Any]:
        result: dict[str, Any] = self.ask(command, "done", timeout_s)
        return result

    def changes(
        self, targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """Publish `count` node updates at `rate`/s (None: back to back) within `budget_s`."""
        return self._run(("changes", targets, rate, count, budget_s), budget_s + 30)

    def raw(
        self, targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """Publish `count` node-updated events with publish_raw (no Postgres) at `rate`/s."""
        return self._run(("raw", targets, rate, count, budget_s), budget_s + 30)

    def bare_writes(self, project_id: str, count: int, budget_s: float) -> dict[str, Any]:
        """`count` bare seq-bump + event-log transactions on one project, back to back."""
        return self._run(("bare_writes", project_id, count), budget_s + 30)

    def progress(
        self, targets: list[tuple[str, str]], rate: float | None, count: int, budget_s: float
    ) -> dict[str, Any]:
        """Publish `count` progress ticks at `rate`/s within `budget_s`."""
        return self._run(("progress", targets, rate, count, budget_s), budget_s + 30)
