"""The change-and-publish rule: one transaction, one seq per change, publish after commit."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import msgspec
import pytest

from common.keys import project_channel
from common.protocol.events import AnyEvent, Event, NodeCreated, decode_bus
from db import nodes as node_q
from db import projects as project_q
from db import users as user_q
from db.changes import ProjectGone, Store, publish_change
from db.events import events_after
from db.nodes import NodeType


async def make_project(store: Store) -> UUID:
    """A user and an empty project, straight through the db layer."""
    user = await user_q.create_user(store.db, "owner@example.com", "x")
    project = await project_q.create_project(store.db, user.id, "p")
    return project.id


async def add_node(store: Store, project_id: UUID, x: float = 0) -> Event[NodeCreated]:
    """One node.created change."""

    async def apply(seq: int) -> NodeCreated:
        node = await node_q.insert_node(
            store.db, project_id, NodeType.PROMPT, x, 0, {}, version=seq
        )
        return NodeCreated(node=node)

    return await publish_change(store, project_id, apply)


async def listen(store: Store, project_id: UUID) -> Any:
    """A pub/sub subscription to the project's channel, confirmed."""
    pubsub = store.redis.pubsub()
    await pubsub.subscribe(project_channel(store.namespace, project_id))
    msg = await pubsub.get_message(timeout=2)
    assert msg is not None and msg["type"] == "subscribe"
    return pubsub


async def drain(pubsub: Any, n: int, timeout_s: float = 5) -> list[AnyEvent]:
    """The next `n` events published on a subscription."""
    events: list[AnyEvent] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(events) < n and asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if msg is not None:
            decoded = decode_bus(msg["data"])
            assert isinstance(decoded, Event)
            events.append(decoded)
    return events


async def test_seq_rises_by_one_per_change(store: Store) -> None:
    """Each change bumps the project's seq by exactly one and publishes that seq."""
    project_id = await make_project(store)
    pubsub = await listen(store, project_id)
    seqs = [(await add_node(store, project_id)).seq for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await project_q.current_seq(store.db, project_id) == 5
    published = await drain(pubsub, 5)
    assert [e.seq for e in published] == [1, 2, 3, 4, 5]
    assert all(e.kind == "node.created" for e in published)
    await pubsub.aclose()


async def test_concurrent_changes_get_distinct_consecutive_seqs(store: Store) -> None:
    """50 concurrent changes to one project get seqs 1..50, each logged once."""
    project_id = await make_project(store)
    events = await asyncio.gather(*(add_node(store, project_id, x=i) for i in range(50)))
    assert sorted(e.seq for e in events) == list(range(1, 51))
    logged = await events_after(store.db, project_id, 0)
    assert [e.seq for e in logged] == list(range(1, 51))
    # the log and the published event agree on which node got which seq
    by_seq = {e.seq: e.data.node.id for e in events}
    assert {e.seq: e.data.node.id for e in logged if isinstance(e.data, NodeCreated)} == by_seq
    # every node records the seq of the change that made it as its version
    assert all(e.data.node.version == e.seq for e in events)


async def test_failed_change_publishes_nothing_and_keeps_seq(store: Store) -> None:
    """A change that raises leaves seq, rows and the log unchanged, and publishes nothing."""
    project_id = await make_project(store)
    await add_node(store, project_id)
    pubsub = await listen(store, project_id)

    async def apply(seq: int) -> NodeCreated:
        await node_q.insert_node(store.db, project_id, NodeType.VIDEO, 1, 1, {}, version=seq)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await publish_change(store, project_id, apply)
    assert await project_q.current_seq(store.db, project_id) == 1
    assert len(await node_q.list_nodes(store.db, project_id)) == 1
    assert [e.seq for e in await events_after(store.db, project_id, 0)] == [1]
    assert await drain(pubsub, 1, timeout_s=0.5) == []
    await pubsub.aclose()


async def test_change_to_missing_project_raises(store: Store) -> None:
    """A change aimed at a project that does not exist raises ProjectGone."""

    async def apply(seq: int) -> NodeCreated:
        raise AssertionError("must not run")

    with pytest.raises(ProjectGone):
        await publish_change(store, UUID(int=0), apply)


async def test_published_bytes_decode_to_the_logged_event(store: Store) -> None:
    """What Redis carries and what the log holds are the same JSON value."""
    project_id = await make_project(store)
    pubsub = await listen(store, project_id)
    await add_node(store, project_id)
    (live,) = await drain(pubsub, 1)
    (logged,) = await events_after(store.db, project_id, 0)
    as_json = msgspec.json.encode
    assert msgspec.json.decode(as_json(live)) == msgspec.json.decode(as_json(logged))
    await pubsub.aclose()


async def test_snapshot_is_consistent_with_its_seq_under_concurrent_changes(store: Store) -> None:
    """A snapshot taken while changes commit holds exactly the nodes created up to its seq."""
    from db.events import read_snapshot

    project_id = await make_project(store)
    writers = asyncio.gather(*(add_node(store, project_id, x=i) for i in range(40)))
    snapshots = []
    for _ in range(10):
        snap = await read_snapshot(store.db, project_id)
        assert snap is not None
        snapshots.append(snap)
        await asyncio.sleep(0)
    await writers
    for snap in snapshots:
        # every change here creates one node, so seq and node count must agree
        assert len(snap.nodes) == snap.seq
    # the reads really did interleave with the writes
    assert len({s.seq for s in snapshots} - {0, 40}) >= 1
    final = await read_snapshot(store.db, project_id)
    assert final is not None and final.seq == 40 and len(final.nodes) == 40
