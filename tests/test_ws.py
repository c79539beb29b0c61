"""GET /ws end to end: subscribe, snapshot, events in seq order, resume with since."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID, uuid4

import httpx

from common import protocol
from db.changes import Store
from tests.support.accounts import Account
from tests.support.servers import ServerThread
from tests.support.waits import until
from tests.support.ws import (
    Model,
    WsClient,
    add_node,
    connect_nodes,
    follow,
    fresh_state,
    move_node,
    new_project,
    remove_node,
)


async def test_snapshot_then_events_in_seq_order(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """A subscriber gets the snapshot as of its seq, then each later change as one event."""
    project_id = await new_project(store, alice.user_id)
    first = await add_node(store, project_id, x=1)
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id)
    snap = await client.expect(protocol.Snapshot)
    assert (snap.project_id, snap.seq) == (project_id, 1)
    assert [n.id for n in snap.nodes] == [first.data.node.id]
    assert snap.connections == [] and snap.jobs == []
    second = await add_node(store, project_id, x=2)
    event = await client.expect(protocol.Event)
    assert (event.seq, event.kind) == (2, "node.created")
    assert event.data == protocol.NodeCreated(node=second.data.node)
    assert event.data.node.x == 2
    await client.close()


async def test_rest_changes_arrive_as_events(
    server: ServerThread, client: httpx.AsyncClient, alice: Account
) -> None:
    """Changes made through the REST API reach a subscriber with their documented kinds."""
    r = await client.post("/api/projects", json={"name": "p"}, headers=alice.headers)
    project_id = r.json()["id"]
    ws = await WsClient.open(server.base_url, alice.token)
    await ws.subscribe(project_id)
    await ws.expect(protocol.Snapshot)
    a = (
        await client.post(
            f"/api/projects/{project_id}/nodes", json={"type": "prompt"}, headers=alice.headers
        )
    ).json()
    b = (
        await client.post(
            f"/api/projects/{project_id}/nodes", json={"type": "video"}, headers=alice.headers
        )
    ).json()
    c = (
        await client.post(
            f"/api/projects/{project_id}/connections",
            json={"source_id": a["id"], "target_id": b["id"]},
            headers=alice.headers,
        )
    ).json()
    await client.patch(f"/api/nodes/{a['id']}", json={"x": 5}, headers=alice.headers)
    await client.patch(f"/api/projects/{project_id}", json={"name": "q"}, headers=alice.headers)
    await client.delete(f"/api/nodes/{a['id']}", headers=alice.headers)
    await client.delete(f"/api/projects/{project_id}", headers=alice.headers)
    frames = [await ws.expect(protocol.Event) for _ in range(7)]
    assert [(f.seq, f.kind) for f in frames] == [
        (1, "node.created"),
        (2, "node.created"),
        (3, "connection.created"),
        (4, "node.updated"),
        (5, "project.updated"),
        (6, "node.deleted"),
        (7, "project.deleted"),
    ]
    assert str(frames[2].data.connection.id) == c["id"]
    assert frames[4].data.project.name == "q"
    assert frames[5].data == protocol.NodeDeleted(
        node_id=UUID(a["id"]), connection_ids=[UUID(c["id"])]
    )
    assert frames[6].data == protocol.ProjectDeleted(project_id=UUID(project_id))
    # the project is gone, so is the subscription
    assert await ws.expect(protocol.Unsubscribed) == protocol.Unsubscribed(
        project_id=UUID(project_id)
    )
    await ws.close()


async def test_two_clients_receive_identical_gap_free_sequences(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """Two subscribers of one project see the same events, with seqs consecutive."""
    project_id = await new_project(store, alice.user_id)
    clients = [await WsClient.open(server.base_url, alice.token) for _ in range(2)]
    for c in clients:
        await c.subscribe(project_id)
        assert (await c.expect(protocol.Snapshot)).seq == 0
    nodes = [await add_node(store, project_id, x=i) for i in range(5)]
    await asyncio.gather(
        *(move_node(store, project_id, n.data.node.id, 100 + i) for i, n in enumerate(nodes))
    )
    seen = []
    for c in clients:
        seen.append([await c.expect(protocol.Event) for _ in range(10)])
    assert [e.seq for e in seen[0]] == list(range(1, 11))
    assert seen[0] == seen[1]
    for c in clients:
        await c.close()


async def test_one_connection_follows_several_projects(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """One connection may subscribe to two projects and unsubscribe from one of them."""
    p1, p2 = await new_project(store, alice.user_id), await new_project(store, alice.user_id)
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(p1)
    await client.subscribe(p2)
    snaps = {(await client.expect(protocol.Snapshot)).project_id for _ in range(2)}
    assert snaps == {p1, p2}
    await add_node(store, p1)
    await add_node(store, p2)
    got = {(await client.expect(protocol.Event)).project_id for _ in range(2)}
    assert got == {p1, p2}
    await client.send({"type": "unsubscribe", "project_id": str(p1)})
    assert await client.expect(protocol.Unsubscribed) == protocol.Unsubscribed(project_id=p1)
    await add_node(store, p1)
    await add_node(store, p2)
    event = await client.expect(protocol.Event)
    assert (event.project_id, event.seq) == (p2, 2)
    await client.send({"type": "ping"})
    assert isinstance(await client.expect(protocol.Pong), protocol.Pong)
    await client.close()


async def test_foreign_or_missing_project_is_not_found(
    server: ServerThread, store: Store, alice: Account, bob: Account
) -> None:
    """Subscribing to someone else's project or a missing one answers project_not_found, no data."""
    alices = await new_project(store, alice.user_id)
    await add_node(store, alices)
    client = await WsClient.open(server.base_url, bob.token)
    for project_id in (alices, uuid4()):
        await client.subscribe(project_id)
        error = await client.expect(protocol.Error)
        assert error.code == "project_not_found" and error.project_id == project_id
    # and the connection still works
    await client.send({"type": "ping"})
    await client.expect(protocol.Pong)
    await client.close()


async def test_resume_with_current_since_gets_subscribed_only(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """since equal to the project's seq: a `subscribed` confirmation and no snapshot."""
    project_id = await new_project(store, alice.user_id)
    for _ in range(3):
        await add_node(store, project_id)
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id, since=3)
    assert await client.expect(protocol.Subscribed) == protocol.Subscribed(
        project_id=project_id, seq=3
    )
    await add_node(store, project_id)
    assert (await client.expect(protocol.Event)).seq == 4
    await client.close()


async def test_resume_with_older_since_replays_from_the_log(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """since behind the project's seq: `subscribed {seq: since}` then exactly the missed events."""
    project_id = await new_project(store, alice.user_id)
    for i in range(6):
        await add_node(store, project_id, x=i)
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id, since=2)
    assert await client.expect(protocol.Subscribed) == protocol.Subscribed(
        project_id=project_id, seq=2
    )
    replayed = [await client.expect(protocol.Event) for _ in range(4)]
    assert [(e.seq, e.data.node.x) for e in replayed] == [(3, 2), (4, 3), (5, 4), (6, 5)]
    await add_node(store, project_id)
    assert (await client.expect(protocol.Event)).seq == 7
    await client.close()


async def test_a_replayed_event_is_byte_for_byte_the_live_one(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """The same event reaches a live client and a resuming one as the same frame text."""
    project_id = await new_project(store, alice.user_id)
    await add_node(store, project_id)
    live = await WsClient.open(server.base_url, alice.token)
    await live.subscribe(project_id, since=1)
    await live.expect(protocol.Subscribed)
    await add_node(store, project_id, x=2.5)
    live_frame = await asyncio.wait_for(live.ws.recv(), 10)
    late = await WsClient.open(server.base_url, alice.token)
    await late.subscribe(project_id, since=1)
    await late.expect(protocol.Subscribed)
    replayed_frame = await asyncio.wait_for(late.ws.recv(), 10)
    assert '"seq":2' in str(live_frame)
    assert replayed_frame == live_frame
    await live.close()
    await late.close()


async def test_since_ahead_or_beyond_the_log_gets_a_snapshot(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """since ahead of the project, or older than the log reaches, is answered with a snapshot."""
    project_id = await new_project(store, alice.user_id)
    for _ in range(4):
        await add_node(store, project_id)
    await store.db.execute(
        "DELETE FROM events WHERE project_id = :p AND seq <= 2", {"p": project_id}
    )
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id, since=9)
    snap = await client.expect(protocol.Snapshot)
    assert (snap.seq, len(snap.nodes)) == (4, 4)
    await client.subscribe(project_id, since=1)
    snap = await client.expect(protocol.Snapshot)
    assert (snap.seq, len(snap.nodes)) == (4, 4)
    await client.close()


async def test_client_disconnected_mid_stream_resumes_to_exactly_postgres(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """A client that drops mid-stream and resubscribes with since ends equal to Postgres."""
    project_id = await new_project(store, alice.user_id)
    created = [await add_node(store, project_id, x=i) for i in range(5)]
    ids = [e.data.node.id for e in created]
    model = Model()
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id)
    await follow(client, model, 5)

    async def churn(n: int) -> None:
        rng = random.Random(n)
        wired: set[tuple[UUID, UUID]] = set()
        for i in range(n):
            choice = rng.random()
            if choice < 0.5:
                await move_node(store, project_id, rng.choice(ids), i)
            elif choice < 0.75 or len(ids) < 3:
                ids.append((await add_node(store, project_id, x=i)).data.node.id)
            elif choice < 0.85:
                victim = ids.pop(rng.randrange(len(ids)))
                wired = {pair for pair in wired if victim not in pair}
                await remove_node(store, project_id, victim)
            else:
                pair = (ids[0], ids[-1])
                if pair not in wired:
                    wired.add(pair)
                    await connect_nodes(store, project_id, *pair)

    writer = asyncio.create_task(churn(120))
    # read part of the stream, then vanish while the writer keeps going
    while model.seq is not None and model.seq < 30:
        model.apply(await client.recv())
    client.ws.transport.abort()  # no close frame: as a dropped network
    away_from = model.seq or 0

    # stay away until the writer has made changes this client missed
    async def missed_some() -> bool:
        seq = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": project_id})
        return bool(seq >= away_from + 10)

    await until(missed_some, "changes made while the client was away")
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id, since=model.seq)
    first = await client.recv()
    model.apply(first)
    await writer
    final_seq = await store.db.fetch_val(
        "SELECT seq FROM projects WHERE id = :p", {"p": project_id}
    )
    await follow(client, model, int(final_seq))
    await client.close()
    assert isinstance(first, protocol.Subscribed), "a short absence is replayed, not snapshotted"
    assert model.gaps == [] and model.duplicates == []
    assert model.applied == list(range(6, int(final_seq) + 1))  # the snapshot held 1..5
    assert model.state() == await fresh_state(server.base_url, alice.token, project_id)


async def test_thousand_concurrent_changes_while_subscribing(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """1,000 concurrent changes during a subscribe: no gap, no duplicate, final state = Postgres."""
    project_id = await new_project(store, alice.user_id)
    sem = asyncio.Semaphore(16)
    committed = 0
    enough = asyncio.Event()

    async def one(i: int) -> None:
        nonlocal committed
        async with sem:
            await add_node(store, project_id, x=i)
        committed += 1
        if committed >= 20:
            enough.set()

    writers = asyncio.gather(*(one(i) for i in range(1000)))
    # subscribe once some have committed, while most are still to come
    await enough.wait()
    client = await WsClient.open(server.base_url, alice.token)
    await client.subscribe(project_id)
    model = Model()
    model.apply(await client.expect(protocol.Snapshot))
    started_at = model.seq
    await writers
    await follow(client, model, 1000, timeout_s=40)
    await client.close()
    assert started_at is not None and 0 < started_at < 1000, "the subscribe raced the writers"
    assert model.gaps == [] and model.duplicates == []
    assert model.applied == list(range(started_at + 1, 1001))
    assert len(model.nodes) == 1000
    assert model.state() == await fresh_state(server.base_url, alice.token, project_id)
