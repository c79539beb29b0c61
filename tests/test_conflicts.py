"""Concurrent edits: `if_version` refuses stale writes with the current node, moves converge."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx

from common import protocol
from db.changes import Store
from tests.support.api import assert_error, dump
from tests.support.servers import ServerThread
from tests.support.teams import make_team
from tests.support.ws import Model, WsClient, follow, fresh_state


async def test_a_stale_patch_is_409_with_the_current_node_and_changes_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A PATCH made against an older version is refused with the node as it is now."""
    team = await make_team(client, store)
    node = team.prompt
    r = await client.patch(
        f"/api/nodes/{node['id']}",
        json={"x": 50, "if_version": node["version"]},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    moved = r.json()
    assert moved["version"] > node["version"]
    before = await dump(store)
    r = await client.patch(
        f"/api/nodes/{node['id']}",
        json={"data": {"prompt": "mine"}, "if_version": node["version"]},
        headers=team.editor.headers,
    )
    assert_error(r, 409, "conflict")
    error = r.json()["error"]
    assert error["current"] == moved, "the node as it is now, in its REST shape"
    assert error["patch"] == {"data": {"prompt": "mine"}, "if_version": node["version"]}
    assert await dump(store) == before
    # with the current version it goes through
    r = await client.patch(
        f"/api/nodes/{node['id']}",
        json={"data": {"prompt": "mine"}, "if_version": moved["version"]},
        headers=team.editor.headers,
    )
    assert r.status_code == 200 and r.json()["data"]["prompt"] == "mine"


async def test_two_writers_of_one_prompt_never_lose_text_silently(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The second writer is shown both texts; only a write made knowing the first one lands."""
    team = await make_team(client, store)
    node = team.prompt
    base = node["version"]
    path = f"/api/nodes/{node['id']}"
    # both start from the same version and type at once
    first, second = await asyncio.gather(
        client.patch(
            path, json={"data": {"prompt": "a fox, by Ann"}, "if_version": base},
            headers=team.owner.headers,
        ),
        client.patch(
            path, json={"data": {"prompt": "a fox, by Ben"}, "if_version": base},
            headers=team.editor.headers,
        ),
    )  # fmt: skip
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409]
    won, lost = (first, second) if first.status_code == 200 else (second, first)
    error = lost.json()["error"]
    # both versions are in the refusal: theirs as written, and the one that won
    assert error["current"]["data"]["prompt"] == won.json()["data"]["prompt"]
    assert error["patch"]["data"]["prompt"] != won.json()["data"]["prompt"]
    # the loser merges by hand and writes against the version it has now seen
    merged = "a fox, by Ann and Ben"
    r = await client.patch(
        path,
        json={"data": {"prompt": merged}, "if_version": error["current"]["version"]},
        headers=team.editor.headers,
    )
    assert r.status_code == 200
    r = await client.get(path, headers=team.viewer.headers)
    assert r.json()["data"]["prompt"] == merged
    log = await store.db.fetch_all(
        "SELECT data FROM events WHERE kind = 'node.updated' ORDER BY seq"
    )
    texts = [row["data"]["node"]["data"]["prompt"] for row in log]
    assert texts == [won.json()["data"]["prompt"], merged]


async def test_only_one_of_many_writes_against_one_version_lands(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Ten PATCHes against the same version at once: one 200, nine 409, one event."""
    team = await make_team(client, store)
    node = team.prompt
    answers = await asyncio.gather(
        *(
            client.patch(
                f"/api/nodes/{node['id']}",
                json={"x": i, "if_version": node["version"]},
                headers=(team.owner if i % 2 else team.editor).headers,
            )
            for i in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 9
    count = await store.db.fetch_val("SELECT count(*) FROM events WHERE kind = 'node.updated'")
    assert count == 1


async def test_a_stale_delete_is_refused(client: httpx.AsyncClient, store: Store) -> None:
    """DELETE ?if_version= refuses a node changed since; a bad version is 422."""
    team = await make_team(client, store)
    node = team.prompt
    path = f"/api/nodes/{node['id']}"
    r = await client.patch(path, json={"data": {"prompt": "changed"}}, headers=team.owner.headers)
    before = await dump(store)
    r = await client.delete(f"{path}?if_version={node['version']}", headers=team.editor.headers)
    assert_error(r, 409, "conflict")
    assert r.json()["error"]["current"]["data"]["prompt"] == "changed"
    for bad in ("-1", "x", "1" * 30):
        assert_error(
            await client.delete(f"{path}?if_version={bad}", headers=team.editor.headers),
            422,
            "invalid_body",
        )
    assert_error(
        await client.patch(path, json={"if_version": -1}, headers=team.editor.headers),
        422,
        "invalid_body",
    )
    assert await dump(store) == before
    current = (await client.get(path, headers=team.editor.headers)).json()["version"]
    r = await client.delete(f"{path}?if_version={current}", headers=team.editor.headers)
    assert r.status_code == 204


async def test_concurrent_moves_of_one_node_converge(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """Two users drag the same node at once: every tab ends on the same position as the database."""
    team = await make_team(client, store)
    node_id = team.prompt["id"]
    tabs = []
    for who in (team.owner, team.editor, team.viewer):
        ws = await WsClient.open(server.base_url, who.token)
        await ws.subscribe(team.project)
        model = Model()
        model.apply(await ws.expect(protocol.Snapshot))
        tabs.append((ws, model))

    async def drag(who_headers: dict[str, str], start: int) -> None:
        for i in range(30):
            r = await client.patch(
                f"/api/nodes/{node_id}", json={"x": start + i, "y": -start - i}, headers=who_headers
            )
            assert r.status_code == 200

    await asyncio.gather(drag(team.owner.headers, 0), drag(team.editor.headers, 1000))
    final = (await client.get(f"/api/nodes/{node_id}", headers=team.viewer.headers)).json()
    seq = (await client.get(f"/api/projects/{team.project}", headers=team.viewer.headers)).json()[
        "seq"
    ]
    truth = await fresh_state(server.base_url, team.viewer.token, UUID(team.project))
    for ws, model in tabs:
        await follow(ws, model, seq)
        assert model.gaps == [] and model.duplicates == []
        assert model.nodes[node_id]["x"] == final["x"] and model.nodes[node_id]["y"] == final["y"]
        assert model.state() == truth
        await ws.close()
