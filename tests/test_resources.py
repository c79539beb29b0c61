"""Projects, nodes and connections: behaviour, ownership, and every bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from db.changes import Store
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_connection, make_node, make_project

Canvas = dict[str, Any]


@pytest.fixture
async def canvas(client: httpx.AsyncClient, alice: Account) -> Canvas:
    """Alice's project with a prompt, an image and a video node, prompt wired to video."""
    pid = await make_project(client, alice)
    prompt = await make_node(client, alice, pid, "prompt", data={"prompt": "a red fox"})
    image = await make_node(client, alice, pid, "image", x=0, y=200)
    video = await make_node(client, alice, pid, "video", x=400)
    conn = await make_connection(client, alice, pid, prompt["id"], video["id"])
    return {"project": pid, "prompt": prompt, "image": image, "video": video, "connection": conn}


async def test_project_crud(client: httpx.AsyncClient, alice: Account) -> None:
    """Create, list, rename and delete a project; rename bumps its seq."""
    pid = await make_project(client, alice, "First")
    r = await client.get("/api/projects", headers=alice.headers)
    assert [p["name"] for p in r.json()] == ["First"]
    r = await client.patch(f"/api/projects/{pid}", json={"name": "Renamed"}, headers=alice.headers)
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["seq"] == 1
    r = await client.delete(f"/api/projects/{pid}", headers=alice.headers)
    assert r.status_code == 204
    assert_error(
        await client.get(f"/api/projects/{pid}", headers=alice.headers), 404, "project_not_found"
    )


async def test_node_update_merges_data_and_moves(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas
) -> None:
    """PATCH merges data keys and keeps the others; x/y move the node."""
    node_id = canvas["prompt"]["id"]
    r = await client.patch(
        f"/api/nodes/{node_id}", json={"x": -5.5, "data": {"label": "Fox"}}, headers=alice.headers
    )
    assert r.status_code == 200
    body = r.json()
    assert body["x"] == -5.5 and body["y"] == 0
    assert body["data"] == {"prompt": "a red fox", "label": "Fox"}
    r = await client.get(f"/api/nodes/{node_id}", headers=alice.headers)
    assert r.json()["data"]["label"] == "Fox"


async def test_node_delete_removes_its_connections(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, store: Store
) -> None:
    """Deleting a node deletes its connections and logs which ones went."""
    r = await client.delete(f"/api/nodes/{canvas['video']['id']}", headers=alice.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/projects/{canvas['project']}/connections", headers=alice.headers)
    assert r.json() == []
    last = await store.db.fetch_one(
        "SELECT kind, data FROM events WHERE project_id = :p ORDER BY seq DESC LIMIT 1",
        {"p": uuid.UUID(canvas["project"])},
    )
    assert last is not None and last["kind"] == "node.deleted"
    assert last["data"]["connection_ids"] == [canvas["connection"]["id"]]


async def test_connection_delete(client: httpx.AsyncClient, alice: Account, canvas: Canvas) -> None:
    """A connection can be deleted and then made again."""
    r = await client.delete(f"/api/connections/{canvas['connection']['id']}", headers=alice.headers)
    assert r.status_code == 204
    await make_connection(
        client, alice, canvas["project"], canvas["prompt"]["id"], canvas["video"]["id"]
    )


async def test_every_mutation_bumps_seq_once(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas
) -> None:
    """The fixture made 4 changes; one more move makes 5."""
    r = await client.get(f"/api/projects/{canvas['project']}", headers=alice.headers)
    assert r.json()["seq"] == 4
    await client.patch(f"/api/nodes/{canvas['image']['id']}", json={"y": 1}, headers=alice.headers)
    r = await client.get(f"/api/projects/{canvas['project']}", headers=alice.headers)
    assert r.json()["seq"] == 5


def _foreign_requests(c: Canvas) -> list[tuple[str, str, dict[str, Any] | None]]:
    pid, node, conn = c["project"], c["prompt"]["id"], c["connection"]["id"]
    return [
        ("GET", f"/api/projects/{pid}", None),
        ("PATCH", f"/api/projects/{pid}", {"name": "mine now"}),
        ("DELETE", f"/api/projects/{pid}", None),
        ("GET", f"/api/projects/{pid}/nodes", None),
        ("POST", f"/api/projects/{pid}/nodes", {"type": "prompt"}),
        ("GET", f"/api/nodes/{node}", None),
        ("PATCH", f"/api/nodes/{node}", {"x": 1}),
        ("DELETE", f"/api/nodes/{node}", None),
        ("GET", f"/api/projects/{pid}/connections", None),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"source_id": node, "target_id": c["video"]["id"]},
        ),
        ("DELETE", f"/api/connections/{conn}", None),
    ]


async def test_second_user_can_neither_read_nor_change(
    client: httpx.AsyncClient, alice: Account, bob: Account, canvas: Canvas, store: Store
) -> None:
    """Every route answers bob with a 404 on alice's things and changes nothing."""
    before = await dump(store)
    for method, path, body in _foreign_requests(canvas):
        r = await client.request(method, path, json=body, headers=bob.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"].endswith("_not_found")
        assert "a red fox" not in r.text
    assert await dump(store) == before
    r = await client.get("/api/projects", headers=bob.headers)
    assert r.json() == []


async def test_unauthenticated_requests_are_401(client: httpx.AsyncClient, canvas: Canvas) -> None:
    """Every resource route refuses a caller without a session."""
    for method, path, body in [
        *_foreign_requests(canvas),
        ("GET", "/api/projects", None),
        ("POST", "/api/projects", {"name": "x"}),
    ]:
        r = await client.request(method, path, json=body)
        assert_error(r, 401, "unauthenticated")


async def test_bob_cannot_wire_alice_nodes_into_his_project(
    client: httpx.AsyncClient, alice: Account, bob: Account, canvas: Canvas, store: Store
) -> None:
    """A connection between a node of another project and one's own is refused."""
    bob_pid = await make_project(client, bob)
    bob_node = await make_node(client, bob, bob_pid, "video")
    before = await dump(store)
    r = await client.post(
        f"/api/projects/{bob_pid}/connections",
        json={"source_id": canvas["prompt"]["id"], "target_id": bob_node["id"]},
        headers=bob.headers,
    )
    assert_error(r, 422, "invalid_source")
    assert await dump(store) == before


NIL = "00000000-0000-0000-0000-000000000000"


def _bad_requests(c: Canvas) -> list[tuple[str, str, dict[str, Any], int, str]]:
    pid, prompt, video, image = c["project"], c["prompt"]["id"], c["video"]["id"], c["image"]["id"]
    js = {"Content-Type": "application/json"}
    return [
        # projects
        ("POST", "/api/projects", {"json": {}}, 422, "invalid_body"),
        ("POST", "/api/projects", {"json": {"name": ""}}, 422, "invalid_body"),
        ("POST", "/api/projects", {"json": {"name": 7}}, 422, "invalid_body"),
        ("POST", "/api/projects", {"json": {"name": "x" * 201}}, 422, "invalid_body"),
        ("POST", "/api/projects", {"content": b"[", "headers": js}, 400, "malformed_json"),
        ("POST", "/api/projects", {"content": b"name=x"}, 415, "unsupported_media_type"),
        (
            "POST",
            "/api/projects",
            {"content": b'{"name":"' + b"x" * (1 << 20) + b'"}', "headers": js},
            413,
            "body_too_large",
        ),
        ("PATCH", f"/api/projects/{pid}", {"json": {"name": None}}, 422, "invalid_body"),
        ("GET", "/api/projects/not-a-uuid", {}, 422, "invalid_id"),
        ("GET", f"/api/projects/{NIL}", {}, 404, "project_not_found"),
        ("DELETE", "/api/projects/123", {}, 422, "invalid_id"),
        ("PUT", f"/api/projects/{pid}", {"json": {"name": "x"}}, 405, "method_not_allowed"),
        # nodes
        ("POST", f"/api/projects/{pid}/nodes", {"json": {"type": "audio"}}, 422, "invalid_body"),
        ("POST", f"/api/projects/{pid}/nodes", {"json": {}}, 422, "invalid_body"),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "x": "left"}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "x": 1e12}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "data": []}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "status": "completed"}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "video", "data": {"video_key": "videos/x/y.mp4"}}},
            422,
            "reserved_data_key",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "data": {"prompt": "x" * 4001}}},
            422,
            "invalid_prompt",
        ),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            {"json": {"type": "prompt", "data": {"prompt": 3}}},
            422,
            "invalid_prompt",
        ),
        (
            "POST",
            f"/api/projects/{NIL}/nodes",
            {"json": {"type": "prompt"}},
            404,
            "project_not_found",
        ),
        ("POST", "/api/projects/zzz/nodes", {"json": {"type": "prompt"}}, 422, "invalid_id"),
        ("PATCH", f"/api/nodes/{prompt}", {"json": {"x": "1"}}, 422, "invalid_body"),
        ("PATCH", f"/api/nodes/{prompt}", {"json": {"type": "video"}}, 422, "invalid_body"),
        (
            "PATCH",
            f"/api/nodes/{image}",
            {"json": {"data": {"image_url": "http://169.254.169.254/"}}},
            422,
            "reserved_data_key",
        ),
        ("PATCH", f"/api/nodes/{prompt}", {"content": b"{", "headers": js}, 400, "malformed_json"),
        ("PATCH", f"/api/nodes/{prompt}", {"content": b"x=1"}, 415, "unsupported_media_type"),
        ("PATCH", f"/api/nodes/{NIL}", {"json": {"x": 1}}, 404, "node_not_found"),
        ("GET", "/api/nodes/1234", {}, 422, "invalid_id"),
        ("DELETE", f"/api/nodes/{NIL}", {}, 404, "node_not_found"),
        # connections
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": prompt, "target_id": prompt}},
            422,
            "invalid_connection",
        ),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": prompt, "target_id": video}},
            409,
            "duplicate_connection",
        ),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": prompt}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": "x", "target_id": video}},
            422,
            "invalid_body",
        ),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": NIL, "target_id": video}},
            422,
            "invalid_source",
        ),
        (
            "POST",
            f"/api/projects/{pid}/connections",
            {"json": {"source_id": prompt, "target_id": NIL}},
            422,
            "invalid_target",
        ),
        ("DELETE", f"/api/connections/{NIL}", {}, 404, "connection_not_found"),
        ("DELETE", "/api/connections/nope", {}, 422, "invalid_id"),
        # unknown route
        ("GET", "/api/nothing-here", {}, 404, "not_found"),
    ]


async def test_bad_input_for_every_route(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, store: Store
) -> None:
    """Each bad request gets its status and code, and the database is unchanged after all of them."""
    before = await dump(store)
    for method, path, kwargs, status, code in _bad_requests(canvas):
        headers = {**alice.headers, **kwargs.pop("headers", {})}
        r = await client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == code, (method, path, r.text)
    assert await dump(store) == before


async def test_connection_across_projects_is_refused(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, store: Store
) -> None:
    """Two projects of one owner cannot be wired together."""
    other = await make_project(client, alice, "Other")
    other_node = await make_node(client, alice, other, "video")
    before = await dump(store)
    r = await client.post(
        f"/api/projects/{canvas['project']}/connections",
        json={"source_id": canvas["prompt"]["id"], "target_id": other_node["id"]},
        headers=alice.headers,
    )
    assert_error(r, 422, "invalid_target")
    assert await dump(store) == before


async def test_nul_characters_and_deep_nesting_are_refused(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, store: Store
) -> None:
    """Strings with NUL (Postgres cannot store them) and absurdly nested bodies are a 422, not a 500."""
    before = await dump(store)
    pid = canvas["project"]
    js = {**alice.headers, "Content-Type": "application/json"}
    bodies = [
        ("POST", "/api/projects", b'{"name": "a\\u0000b"}'),
        ("POST", f"/api/projects/{pid}/nodes", b'{"type": "prompt", "data": {"k": ["x\\u0000"]}}'),
        ("POST", f"/api/projects/{pid}/nodes", b'{"type": "prompt", "data": {"k\\u0000": 1}}'),
        (
            "POST",
            f"/api/projects/{pid}/nodes",
            b'{"type": "prompt", "data": {"d": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        ),
        ("POST", "/api/auth/login", b'{"email": "a\\u0000@b.co", "password": "x"}'),
    ]
    for method, path, content in bodies:
        r = await client.request(method, path, content=content, headers=js)
        assert_error(r, 422, "invalid_body")
    # a backslash before u0000 is ordinary text, not a NUL
    r = await client.post("/api/projects", content=b'{"name": "a\\\\u0000b"}', headers=js)
    assert r.status_code == 201 and r.json()["name"] == "a\\u0000b"
    await client.delete(f"/api/projects/{r.json()['id']}", headers=alice.headers)
    after = await dump(store)
    # the round trip above bumped nothing of the canvas project
    assert after["nodes"] == before["nodes"] and after["users"] == before["users"]
