"""Takes: every output of a job kept on its node, one active, listed, chosen and deleted with its media."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from common import protocol
from db.changes import Store
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_node, make_project
from tests.support.servers import ServerThread
from tests.support.services import Services, settings_for
from tests.support.workers import WorkerHarness, video_body, wait_for_job
from tests.support.ws import WsClient


async def generate(
    client: httpx.AsyncClient, who: Account, node_id: str, services: Services, **body: Any
) -> dict[str, Any]:
    """Submit generate-video, run the worker to the end, return the completed job."""
    r = await client.post(
        "/api/ai/generate-video", json=video_body(node_id, **body), headers=who.headers
    )
    assert r.status_code == 202, r.text
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
    job = await wait_for_job(client, who, r.json()["job_id"])
    assert job["status"] == "completed", job
    return job


async def takes_of(
    client: httpx.AsyncClient, who: Account, node_id: str, **query: Any
) -> dict[str, Any]:
    """GET /api/nodes/{id}/takes."""
    r = await client.get(f"/api/nodes/{node_id}/takes", params=query, headers=who.headers)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


async def node_of(client: httpx.AsyncClient, who: Account, node_id: str) -> dict[str, Any]:
    """The node as GET /api/nodes/{id} shows it."""
    r = await client.get(f"/api/nodes/{node_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    node: dict[str, Any] = r.json()
    return node


async def snapshot_of(server: ServerThread, who: Account, project_id: str) -> protocol.Snapshot:
    """A fresh websocket snapshot of the project."""
    ws = await WsClient.open(server.base_url, who.token)
    try:
        await ws.subscribe(project_id)
        return await ws.expect(protocol.Snapshot)
    finally:
        await ws.close()


@pytest.mark.timeout(120)
async def test_four_variants_are_four_takes_one_active(
    client: httpx.AsyncClient,
    alice: Account,
    services: Services,
    server: ServerThread,
    store: Store,
) -> None:
    """number_of_videos 4 makes one job with four different MP4 takes (seeds 11 to 14), the first active, everywhere."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    job = await generate(client, alice, video, services, number_of_videos=4, seed=11)
    page = await takes_of(client, alice, video)
    takes = page["takes"]
    assert page["next_before"] is None
    assert [t["index"] for t in takes] == [0, 1, 2, 3]
    assert {t["job_id"] for t in takes} == {job["job_id"]}
    assert [t["seed"] for t in takes] == [11, 12, 13, 14]
    assert all(t["created_by"] == alice.user_id for t in takes)
    assert all(t["params"]["duration"] == 4 and t["params"]["prompt"] for t in takes)
    assert takes[0]["media_key"] == job["result"]["video_key"]
    assert job["result"]["video_keys"] == [t["media_key"] for t in takes]
    digests = set()
    for take in takes:
        r = await client.get(take["media_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        digests.add(hashlib.sha256(r.content).hexdigest())
    assert len(digests) == 4
    node = await node_of(client, alice, video)
    assert node["active_take_id"] == takes[0]["id"]
    assert node["data"]["video_key"] == takes[0]["media_key"]
    # the event that completed the job carried the four takes, and the snapshot has them
    row = await store.db.fetch_one(
        "SELECT data::text AS data FROM events WHERE project_id = :p AND kind = 'job.completed'",
        {"p": uuid.UUID(pid)},
    )
    assert row is not None
    completed = protocol.decode_payload("job.completed", row["data"])
    assert isinstance(completed, protocol.JobCompleted)
    assert [str(t.id) for t in completed.takes] == [t["id"] for t in takes]
    assert str(completed.node.active_take_id) == takes[0]["id"]
    snap = await snapshot_of(server, alice, pid)
    assert [str(t.id) for t in snap.takes] == [t["id"] for t in takes]
    assert all(t.media_url for t in snap.takes)


@pytest.mark.timeout(120)
async def test_paging_choosing_and_deleting_takes(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    services: Services,
    server: ServerThread,
    store: Store,
) -> None:
    """Takes page newest first; picking one is an event; deleting removes media, and a node never shows a deleted take."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    other = (await make_node(client, alice, pid, "video"))["id"]
    await generate(client, alice, video, services, number_of_videos=2, seed=1)
    await generate(client, alice, video, services, number_of_videos=1, seed=5)
    await generate(client, alice, other, services, seed=9)
    everything = (await takes_of(client, alice, video))["takes"]
    # newest job first, then each job's outputs in order
    assert [t["seed"] for t in everything] == [5, 1, 2]
    first = await takes_of(client, alice, video, limit=2)
    assert [t["id"] for t in first["takes"]] == [t["id"] for t in everything[:2]]
    rest = await takes_of(client, alice, video, limit=2, before=first["next_before"])
    assert [t["id"] for t in rest["takes"]] == [everything[2]["id"]] and rest["next_before"] is None
    newest, old_a, old_b = everything
    assert (await node_of(client, alice, video))["active_take_id"] == newest["id"]

    # choose an older take: one seq'd event, the node shows it and signs its URL
    r = await client.put(
        f"/api/nodes/{video}/active-take", json={"take_id": old_b["id"]}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["active_take_id"] == old_b["id"]
    assert r.json()["data"]["video_key"] == old_b["media_key"] and r.json()["data"]["video_url"]
    kinds = await store.db.fetch_all(
        "SELECT kind FROM events WHERE project_id = :p ORDER BY seq DESC LIMIT 1",
        {"p": uuid.UUID(pid)},
    )
    assert kinds[0]["kind"] == "node.active_take_changed"

    # refused: a take of another node, a stranger's take, a bad cursor — nothing changes
    other_take = (await takes_of(client, alice, other))["takes"][0]
    before = await dump(store)
    r = await client.put(
        f"/api/nodes/{video}/active-take", json={"take_id": other_take["id"]}, headers=alice.headers
    )
    assert_error(r, 422, "invalid_take")
    r = await client.delete(f"/api/takes/{newest['id']}", headers=bob.headers)
    assert_error(r, 404, "take_not_found")
    r = await client.get(
        f"/api/nodes/{video}/takes?before={other_take['id']}", headers=alice.headers
    )
    assert_error(r, 422, "invalid_before")
    r = await client.get(f"/api/nodes/{video}/takes?limit=0", headers=alice.headers)
    assert_error(r, 422, "invalid_limit")
    assert await dump(store) == before

    # deleting the active take: its file goes, the newest remaining one is active
    media = services.data_dir / "media"
    assert (media / old_b["media_key"]).exists()
    r = await client.delete(f"/api/takes/{old_b['id']}", headers=alice.headers)
    assert r.status_code == 204, r.text
    assert not (media / old_b["media_key"]).exists()
    node = await node_of(client, alice, video)
    assert node["active_take_id"] == newest["id"]
    assert node["data"]["video_key"] == newest["media_key"]
    # deleting a take that is not active leaves the node's choice alone
    r = await client.delete(f"/api/takes/{old_a['id']}", headers=alice.headers)
    assert r.status_code == 204
    assert (await node_of(client, alice, video))["active_take_id"] == newest["id"]
    # and the last one: no active take, no video shown
    r = await client.delete(f"/api/takes/{newest['id']}", headers=alice.headers)
    assert r.status_code == 204
    node = await node_of(client, alice, video)
    assert node["active_take_id"] is None and "video_key" not in node["data"]
    assert (await takes_of(client, alice, video))["takes"] == []
    for take in everything:
        assert not (media / take["media_key"]).exists()
    r = await client.delete(f"/api/takes/{newest['id']}", headers=alice.headers)
    assert_error(r, 404, "take_not_found")
    snap = await snapshot_of(server, alice, pid)
    assert {str(t.id) for t in snap.takes} == {other_take["id"]}
    deleted = await store.db.fetch_all(
        "SELECT data::text AS data FROM events WHERE project_id = :p AND kind = 'take.deleted' "
        "ORDER BY seq",
        {"p": uuid.UUID(pid)},
    )
    shown = [protocol.decode_payload("take.deleted", r["data"]) for r in deleted]
    assert all(isinstance(d, protocol.TakeDeleted) for d in shown)
    assert [str(d.node.active_take_id) for d in shown if isinstance(d, protocol.TakeDeleted)] == [
        newest["id"],
        newest["id"],
        "None",
    ]


@pytest.mark.timeout(60)
async def test_deleting_a_node_removes_its_takes_media(
    client: httpx.AsyncClient, alice: Account, services: Services
) -> None:
    """A deleted node's takes go with it, and so do their files."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    job = await generate(client, alice, video, services, number_of_videos=2)
    media = services.data_dir / "media"
    keys = job["result"]["video_keys"]
    assert all((media / k).exists() for k in keys)
    r = await client.delete(f"/api/nodes/{video}", headers=alice.headers)
    assert r.status_code == 204
    assert not any((media / k).exists() for k in keys)
