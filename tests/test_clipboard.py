"""POST /api/projects/{project_id}/paste: nodes with data and connections, media re-attached only when readable."""

from __future__ import annotations

import io
import uuid

import httpx
from PIL import Image

from db.changes import Store
from tasks.storage.auto import make_storage
from tests.support.accounts import Account
from tests.support.api import assert_error, make_node, make_project
from tests.support.services import Services, settings_for


def png() -> bytes:
    """A small PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


async def upload(client: httpx.AsyncClient, who: Account, project_id: str) -> str:
    """Upload an image to the project; returns its key."""
    r = await client.post(
        f"/api/projects/{project_id}/uploads",
        files={"file": ("a.png", png(), "image/png")},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_paste_makes_nodes_and_links_among_them_and_to_existing_nodes(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """Pasted nodes keep their data; links between refs and to existing nodes are made; refs map to new ids."""
    pid = await make_project(client, alice)
    video = await make_node(client, alice, pid, "video")
    seq = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": pid})
    body = {
        "nodes": [
            {"ref": "p", "type": "prompt", "x": 10, "y": 20, "data": {"prompt": "fox"}},
            {"ref": "q", "type": "prompt", "x": 10, "y": 300},
        ],
        "connections": [
            {"source": "p", "target": video["id"], "ref": "link"},
            {"source": "p", "target": video["id"]},
        ],
    }
    r = await client.post(f"/api/projects/{pid}/paste", json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert set(answer["refs"]) == {"p", "q", "link"}
    assert [n["data"] for n in answer["nodes"]] == [{"prompt": "fox"}, {}]
    assert [(c["source_id"], c["target_id"]) for c in answer["connections"]] == [
        (answer["refs"]["p"], video["id"])
    ]
    # one change per node and per connection
    after = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": pid})
    assert after == seq + 3
    kinds = await store.db.fetch_all(
        "SELECT kind FROM events WHERE project_id = :p AND seq > :s ORDER BY seq",
        {"p": pid, "s": seq},
    )
    assert [k["kind"] for k in kinds] == ["node.created", "node.created", "connection.created"]


async def test_paste_copies_media_into_another_project_of_the_same_user(
    client: httpx.AsyncClient, alice: Account, services: Services
) -> None:
    """An image of another project is copied under the target, one of the same project is shared, a video is copied and completed."""
    source = await make_project(client, alice, "Source")
    target = await make_project(client, alice, "Target")
    key = await upload(client, alice, source)
    storage = make_storage(settings_for(services))
    video_key = f"videos/{source}/{uuid.uuid4()}.mp4"
    await storage.put_bytes(video_key, b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    body = {
        "nodes": [
            {"ref": "i", "type": "image", "data": {"image_key": key}},
            {"ref": "v", "type": "video", "data": {"video_key": video_key, "duration": 4}},
        ]
    }
    r = await client.post(f"/api/projects/{target}/paste", json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    image, video = r.json()["nodes"]
    assert image["data"]["image_key"].startswith(f"images/{target}/")
    assert image["data"]["image_url"]
    assert await storage.get_bytes(image["data"]["image_key"]) == await storage.get_bytes(key)
    assert video["data"]["video_key"].startswith(f"videos/{target}/")
    assert video["status"] == "completed"
    # the copied image is an upload of the target: a node there may point at it
    r = await client.patch(
        f"/api/nodes/{image['id']}",
        json={"data": {"image_key": image["data"]["image_key"]}},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    same = await client.post(
        f"/api/projects/{source}/paste",
        json={"nodes": [{"ref": "i", "type": "image", "data": {"image_key": key}}]},
        headers=alice.headers,
    )
    assert same.json()["nodes"][0]["data"]["image_key"] == key


async def test_paste_refuses_media_and_nodes_the_caller_may_not_use(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    """Another user's image, a key in a made-up place, a video key on an image node, foreign nodes and reused refs are refused."""
    alices = await make_project(client, alice)
    key = await upload(client, alice, alices)
    bobs = await make_project(client, bob)
    url = f"/api/projects/{bobs}/paste"

    async def paste(body: object) -> httpx.Response:
        return await client.post(url, json=body, headers=bob.headers)

    image = {"ref": "i", "type": "image", "data": {"image_key": key}}
    assert_error(await paste({"nodes": [image]}), 422, "invalid_image_key")
    made_up = {"ref": "i", "type": "image", "data": {"image_key": f"images/{bobs}/nothing.png"}}
    assert_error(await paste({"nodes": [made_up]}), 422, "invalid_image_key")
    wrong = {"ref": "i", "type": "image", "data": {"video_key": "videos/x/y.mp4"}}
    assert_error(await paste({"nodes": [wrong]}), 422, "invalid_video_key")
    alices_node = await make_node(client, alice, alices)
    link = {"source": "p", "target": alices_node["id"]}
    prompt = {"ref": "p", "type": "prompt"}
    assert_error(await paste({"nodes": [prompt], "connections": [link]}), 422, "invalid_connection")
    assert_error(await paste({"nodes": [prompt, prompt]}), 422, "duplicate_ref")
    assert_error(
        await paste({"nodes": [{**prompt, "data": {"image_url": "x"}}]}), 422, "reserved_data_key"
    )
    r = await client.post(
        f"/api/projects/{alices}/paste", json={"nodes": [prompt]}, headers=bob.headers
    )
    assert_error(r, 404, "project_not_found")


async def test_project_list_carries_a_poster_of_the_newest_output(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """A project with an uploaded image lists it as its poster; an empty project has none."""
    empty = await make_project(client, alice, "Empty")
    pictured = await make_project(client, alice, "Pictured")
    key = await upload(client, alice, pictured)
    node = await make_node(client, alice, pictured, "image")
    r = await client.patch(
        f"/api/nodes/{node['id']}", json={"data": {"image_key": key}}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    listed = {p["id"]: p for p in (await client.get("/api/projects", headers=alice.headers)).json()}
    assert listed[empty]["poster_url"] is None and listed[empty]["poster_kind"] is None
    assert listed[pictured]["poster_kind"] == "image"
    assert "/media/images/" in listed[pictured]["poster_url"]
