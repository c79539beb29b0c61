"""Typed input ports: every bad link and every impossible combination refused with its code, nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import msgspec
import pytest

from common.protocol.ports import NODE_TYPES, node_types
from db.changes import Store
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_node, make_project
from tests.support.workers import image_bytes, upload_image, video_body


async def link(
    client: httpx.AsyncClient, who: Account, pid: str, source: str, target: str, port: str | None
) -> httpx.Response:
    """POST a connection, with `target_port` when given."""
    body: dict[str, Any] = {"source_id": source, "target_id": target}
    if port is not None:
        body["target_port"] = port
    return await client.post(f"/api/projects/{pid}/connections", json=body, headers=who.headers)


async def image_node(client: httpx.AsyncClient, who: Account, pid: str) -> str:
    """An image node holding an uploaded PNG."""
    node = await make_node(client, who, pid, "image")
    r = await upload_image(client, who, pid, image_bytes(), node_id=node["id"])
    assert r.status_code == 201, r.text
    return str(node["id"])


async def test_node_types_route_is_the_port_table(client: httpx.AsyncClient) -> None:
    """GET /api/node-types serves common/protocol/ports.py's table, as the canvas must draw it."""
    r = await client.get("/api/node-types")
    assert r.status_code == 200
    assert r.json() == msgspec.json.decode(msgspec.json.encode(node_types()))
    video = next(t for t in r.json()["node_types"] if t["type"] == "video")
    assert [(p["name"], p["kind"], p["max_links"]) for p in video["inputs"]] == [
        ("prompt", "text", 1),
        ("first_frame", "image", 1),
        ("last_frame", "image", 1),
        ("references", "image", 3),
        ("extend", "video", 1),
    ]
    assert [p.name for p in NODE_TYPES["image_gen"].inputs] == ["prompt"]  # type: ignore[index]


async def test_links_without_a_port_take_the_first_that_fits(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """A body without target_port (today's canvas) wires a prompt to prompt, images to first, last, references."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    prompt = (await make_node(client, alice, pid, "prompt"))["id"]
    images = [(await make_node(client, alice, pid, "image"))["id"] for _ in range(3)]
    ports = [(await link(client, alice, pid, prompt, video, None)).json()["target_port"]]
    for image in images:
        r = await link(client, alice, pid, image, video, None)
        assert r.status_code == 201, r.text
        ports.append(r.json()["target_port"])
    assert ports == ["prompt", "first_frame", "last_frame", "references"]


async def test_every_invalid_link_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """Wrong kind, a full port, an unknown port, no fitting port, a cycle, a self-link: 422 with the reason."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    clip = (await make_node(client, alice, pid, "video"))["id"]
    prompt = (await make_node(client, alice, pid, "prompt"))["id"]
    prompt2 = (await make_node(client, alice, pid, "prompt"))["id"]
    gen = (await make_node(client, alice, pid, "image_gen"))["id"]
    images = [(await make_node(client, alice, pid, "image"))["id"] for _ in range(4)]
    assert (await link(client, alice, pid, prompt, video, "prompt")).status_code == 201
    assert (await link(client, alice, pid, clip, video, "extend")).status_code == 201
    for image in images[:3]:
        assert (await link(client, alice, pid, image, video, "references")).status_code == 201
    before = await dump(store)
    cases = [
        (prompt2, video, "prompt", "port_full"),
        (images[3], video, "references", "port_full"),
        (prompt2, video, "first_frame", "wrong_kind"),
        (images[3], video, "extend", "wrong_kind"),
        (video, gen, "prompt", "wrong_kind"),
        (prompt2, video, "sound", "unknown_port"),
        (prompt2, prompt, None, "no_port"),
        (video, gen, None, "no_port"),
        (video, clip, "extend", "cycle"),
        (gen, gen, "prompt", "self_link"),
    ]
    for source, target, port, reason in cases:
        r = await link(client, alice, pid, source, target, port)
        assert_error(r, 422, "invalid_connection")
        assert r.json()["error"]["reason"] == reason, (port, reason, r.text)
    assert await dump(store) == before


async def test_impossible_combinations_are_refused_at_submit(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """Inputs from the ports the model cannot combine are refused with their own codes; nothing is written."""
    pid = await make_project(client, alice)
    prompt = (await make_node(client, alice, pid, "prompt", data={"prompt": "a fox"}))["id"]
    empty_prompt = (await make_node(client, alice, pid, "prompt"))["id"]

    async def video_with(**ports: str | list[str]) -> str:
        node = (await make_node(client, alice, pid, "video"))["id"]
        for port, sources in ports.items():
            for source in [sources] if isinstance(sources, str) else sources:
                r = await link(client, alice, pid, source, node, port)
                assert r.status_code == 201, r.text
        return str(node)

    img = [await image_node(client, alice, pid) for _ in range(2)]
    bare_image = (await make_node(client, alice, pid, "image"))["id"]
    no_take = (await make_node(client, alice, pid, "video"))["id"]
    hd_clip = (await make_node(client, alice, pid, "video"))["id"]
    # a 1080p take, as a finished 1080p job leaves it (its bytes are not read at submit)
    await store.db.execute(
        "WITH t AS (INSERT INTO takes (project_id, node_id, media_key, mime_type, params) "
        "VALUES (:p, :n, :k, 'video/mp4', CAST(:params AS jsonb)) RETURNING id) "
        "UPDATE nodes SET active_take_id = (SELECT id FROM t) WHERE id = :n",
        {
            "p": uuid.UUID(pid),
            "n": uuid.UUID(hd_clip),
            "k": f"videos/{pid}/hd.mp4",
            "params": {"resolution": "1080p", "duration": 8},
        },
    )
    sd_clip = (await make_node(client, alice, pid, "video"))["id"]
    await store.db.execute(
        "WITH t AS (INSERT INTO takes (project_id, node_id, media_key, mime_type, params) "
        "VALUES (:p, :n, :k, 'video/mp4', CAST(:params AS jsonb)) RETURNING id) "
        "UPDATE nodes SET active_take_id = (SELECT id FROM t) WHERE id = :n",
        {
            "p": uuid.UUID(pid),
            "n": uuid.UUID(sd_clip),
            "k": f"videos/{pid}/sd.mp4",
            "params": {"resolution": "720p", "duration": 4},
        },
    )
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            await video_with(prompt=prompt, last_frame=img[0]),
            {"duration": 8},
            "last_frame_needs_first_frame",
        ),
        (
            await video_with(prompt=prompt, first_frame=img[0], last_frame=img[1]),
            {},
            "interpolation_needs_8s",
        ),
        (
            await video_with(prompt=prompt, references=img),
            {"duration": 8, "aspect_ratio": "9:16"},
            "references_need_16_9",
        ),
        (await video_with(prompt=prompt, references=img[:1]), {}, "references_need_8s"),
        (await video_with(prompt=prompt), {"resolution": "1080p"}, "resolution_needs_8s"),
        (await video_with(prompt=prompt, extend=hd_clip), {"duration": 8}, "extend_source_1080p"),
        (
            await video_with(prompt=prompt, extend=sd_clip),
            {"duration": 8, "resolution": "1080p"},
            "extension_720p_only",
        ),
        (await video_with(prompt=prompt, extend=sd_clip), {}, "extension_needs_8s"),
        (
            await video_with(prompt=prompt, extend=sd_clip, first_frame=img[0]),
            {"duration": 8},
            "extend_with_images",
        ),
        (await video_with(prompt=prompt, extend=no_take), {"duration": 8}, "input_missing"),
        (await video_with(prompt=prompt, first_frame=bare_image), {}, "input_missing"),
        (await video_with(prompt=empty_prompt), {}, "input_missing"),
        (await video_with(), {}, "missing_prompt"),
        (
            await video_with(prompt=prompt),
            {"image_url": f"videos/{pid}/sd.mp4"},
            "invalid_image_url",
        ),
        (
            await video_with(prompt=prompt),
            {"extend_url": f"images/{pid}/none.png"},
            "invalid_extend_url",
        ),
    ]
    before = await dump(store)
    for node, changes, code in cases:
        body = video_body(node, **changes)
        if code != "invalid_image_url" and code != "invalid_extend_url":
            body.pop("prompt")  # the prompt comes from the port
        r = await client.post("/api/ai/generate-video", json=body, headers=alice.headers)
        assert_error(r, 422, code)
    assert await dump(store) == before
    assert await store.redis.zcard(f"{store.namespace}:queue") == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"prompt": "x", "aspect_ratio": "16:9", "image_size": "4K"}, "unsupported_image_size"),
        ({"aspect_ratio": "7:5"}, "invalid_body"),
        ({"aspect_ratio": "16:9", "number_of_images": 5}, "invalid_body"),
        ({"aspect_ratio": "16:9"}, "missing_prompt"),
    ],
)
async def test_bad_image_submits_change_nothing(
    client: httpx.AsyncClient, alice: Account, store: Store, body: dict[str, Any], code: str
) -> None:
    """Each bad generate-image body gets its code and writes nothing."""
    pid = await make_project(client, alice)
    gen = (await make_node(client, alice, pid, "image_gen"))["id"]
    before = await dump(store)
    r = await client.post(
        "/api/ai/generate-image", json={"node_id": gen, **body}, headers=alice.headers
    )
    assert_error(r, 422, code)
    video = (await make_node(client, alice, pid, "video"))["id"]
    r = await client.post(
        "/api/ai/generate-image",
        json={"node_id": video, "prompt": "x", "aspect_ratio": "1:1"},
        headers=alice.headers,
    )
    assert_error(r, 422, "not_an_image_gen_node")
    rows = await store.db.fetch_all("SELECT * FROM jobs")
    assert rows == [] and before["jobs"] == []


def test_docs_list_the_same_ports() -> None:
    """docs/protocol.md's port table names every node type and each of its ports, in order."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = doc[doc.index("### Node types and ports") :]
    section = section[: section.index("\n### ", 5)]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", section, re.M)
    documented = {t: re.findall(r"`([a-z_]+)` \(", ports) for t, ports in rows}
    assert documented == {t.value: [p.name for p in spec.inputs] for t, spec in NODE_TYPES.items()}


async def test_an_input_the_body_names_wins_over_its_port(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """A body prompt (or image) is used even when the port's source has nothing yet; the empty port is not read."""
    pid = await make_project(client, alice)
    video = (await make_node(client, alice, pid, "video"))["id"]
    empty_prompt = (await make_node(client, alice, pid, "prompt"))["id"]
    empty_image = (await make_node(client, alice, pid, "image"))["id"]
    for source in (empty_prompt, empty_image):
        assert (await link(client, alice, pid, source, video, None)).status_code == 201
    upload = (await upload_image(client, alice, pid, image_bytes())).json()
    r = await client.post(
        "/api/ai/generate-video",
        json=video_body(video, image_url=upload["key"]),
        headers=alice.headers,
    )
    assert r.status_code == 202, r.text
