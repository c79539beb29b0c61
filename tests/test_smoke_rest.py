"""A first walk through the REST API."""

from __future__ import annotations

import httpx

from tests.support.accounts import Account


async def test_walkthrough(client: httpx.AsyncClient, alice: Account) -> None:
    """Sign up, create a project, add nodes and a connection, read them back."""
    h = alice.headers
    r = await client.post("/api/projects", json={"name": "Demo"}, headers=h)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    a = (
        await client.post(
            f"/api/projects/{pid}/nodes",
            json={"type": "prompt", "data": {"prompt": "a cat"}},
            headers=h,
        )
    ).json()
    b = (
        await client.post(f"/api/projects/{pid}/nodes", json={"type": "video", "x": 300}, headers=h)
    ).json()
    r = await client.post(
        f"/api/projects/{pid}/connections",
        json={"source_id": a["id"], "target_id": b["id"]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = await client.patch(f"/api/nodes/{a['id']}", json={"x": 10.5}, headers=h)
    assert r.status_code == 200 and r.json()["x"] == 10.5
    nodes = (await client.get(f"/api/projects/{pid}/nodes", headers=h)).json()
    assert {n["id"] for n in nodes} == {a["id"], b["id"]}
    project = (await client.get(f"/api/projects/{pid}", headers=h)).json()
    assert project["seq"] == 4
