"""Image uploads: recognised by content, size and pixel limits, attached to image nodes only."""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from common.config import Settings
from db.changes import Store
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_node, make_project
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import image_bytes, upload_image


def noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about 3 bytes a pixel."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def project(client: httpx.AsyncClient, alice: Account) -> dict[str, Any]:
    """Alice's project with an image node and a video node."""
    pid = await make_project(client, alice)
    image = await make_node(client, alice, pid, "image")
    video = await make_node(client, alice, pid, "video")
    return {"id": pid, "image": image["id"], "video": video["id"]}


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
async def test_upload_recognises_format_by_content(
    client: httpx.AsyncClient,
    alice: Account,
    project: dict[str, Any],
    services: Services,
    store: Store,
    fmt: str,
    mime: str,
    ext: str,
) -> None:
    """A PNG/JPEG/WebP named misleadingly is stored by its real type under images/{project}/."""
    data = image_bytes(fmt, (320, 200))
    r = await upload_image(client, alice, project["id"], data, filename="holiday.gif")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mime_type"] == mime
    assert (body["width"], body["height"], body["size_bytes"]) == (320, 200, len(data))
    assert body["key"].startswith(f"images/{project['id']}/") and body["key"].endswith(f".{ext}")
    uuid.UUID(body["key"].split("/")[-1].split(".")[0])
    assert "node" not in body
    # stored byte for byte, and served at the signed URL with its type
    assert (services.data_dir / "media" / body["key"]).read_bytes() == data
    got = await client.get(body["url"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == mime
    row = await store.db.fetch_one("SELECT * FROM uploads WHERE key = :k", {"k": body["key"]})
    assert row is not None and str(row["project_id"]) == project["id"]


async def test_upload_attaches_to_image_node(
    client: httpx.AsyncClient, alice: Account, project: dict[str, Any], store: Store
) -> None:
    """With node_id, the image node's data gets the key in one node.updated change."""
    r = await upload_image(client, alice, project["id"], image_bytes(), node_id=project["image"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["node"]["id"] == project["image"]
    assert body["node"]["data"]["image_key"] == body["key"]
    assert body["node"]["data"]["image_url"].startswith("http")
    node = (await client.get(f"/api/nodes/{project['image']}", headers=alice.headers)).json()
    assert node["data"]["image_key"] == body["key"]
    kinds = [r["kind"] for r in await store.db.fetch_all("SELECT kind FROM events ORDER BY seq")]
    assert kinds[-1] == "node.updated"


async def test_upload_bad_inputs_change_nothing(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    project: dict[str, Any],
    store: Store,
) -> None:
    """Every bad upload gets its 4xx code and leaves every table as it was."""
    pid = project["id"]
    bob_pid = await make_project(client, bob, "Bob's")
    bob_image = (await make_node(client, bob, bob_pid, "image"))["id"]
    before = await dump(store)
    png = image_bytes()
    gif = image_bytes("GIF")
    cases: list[tuple[httpx.Response, int, str]] = [
        (await upload_image(client, alice, pid, b"GIF89a not really"), 422, "unsupported_image"),
        (await upload_image(client, alice, pid, gif), 422, "unsupported_image"),
        (
            await upload_image(client, alice, pid, b"%PDF-1.4 ...", filename="x.png"),
            422,
            "unsupported_image",
        ),
        # a PNG header on garbage: the structure check catches it
        (await upload_image(client, alice, pid, png[:64] + b"\0" * 200), 422, "unsupported_image"),
        (
            await upload_image(client, alice, pid, png, node_id=project["video"]),
            422,
            "invalid_node",
        ),
        (await upload_image(client, alice, pid, png, node_id=bob_image), 422, "invalid_node"),
        (await upload_image(client, alice, pid, png, node_id="not-a-uuid"), 422, "invalid_id"),
        (await upload_image(client, bob, pid, png), 404, "project_not_found"),
        (await upload_image(client, alice, str(uuid.uuid4()), png), 404, "project_not_found"),
        (
            await client.post(
                f"/api/projects/{pid}/uploads", json={"file": "x"}, headers=alice.headers
            ),
            415,
            "unsupported_media_type",
        ),
        (
            await client.post(
                f"/api/projects/{pid}/uploads",
                files={"picture": ("a.png", png, "image/png")},
                headers=alice.headers,
            ),
            422,
            "missing_file",
        ),
        (
            await client.post(
                f"/api/projects/{pid}/uploads",
                content=b"--x\r\nbroken",
                headers={**alice.headers, "content-type": "multipart/form-data"},
            ),
            422,
            "invalid_multipart",
        ),
    ]
    for response, status, code in cases:
        assert_error(response, status, code)
    r = await client.post(f"/api/projects/{pid}/uploads", files={"file": ("a.png", png)})
    assert_error(r, 401, "unauthenticated")
    assert await dump(store) == before


@pytest.fixture
def small_limits_server(services: Services) -> Any:
    """A second web process with a 100 KB upload limit and a 1 megapixel limit."""
    port = free_port()
    settings: Settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        max_upload_bytes=100_000,
        max_upload_pixels=1_000_000,
    )
    srv = ServerThread(settings, port)
    srv.start()
    yield srv
    srv.stop()


async def test_upload_limits(
    small_limits_server: ServerThread, alice: Account, store: Store
) -> None:
    """Over max_upload_bytes is 413 (declared or streamed); over max_upload_pixels is 422."""
    async with httpx.AsyncClient(base_url=small_limits_server.base_url, timeout=10) as c:
        pid = await make_project(c, alice)
        before = await dump(store)
        big = noise_png(320, 320)
        assert len(big) > 100_000
        assert_error(await upload_image(c, alice, pid, big), 413, "body_too_large")

        # the same without a Content-Length: the limit holds while streaming
        async def chunks() -> Any:
            boundary = b"cfboundary"
            yield (
                b"--"
                + boundary
                + b'\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            )
            for i in range(0, len(big), 16_384):
                yield big[i : i + 16_384]
            yield b"\r\n--" + boundary + b"--\r\n"

        r = await c.post(
            f"/api/projects/{pid}/uploads",
            content=chunks(),
            headers={**alice.headers, "content-type": "multipart/form-data; boundary=cfboundary"},
        )
        assert_error(r, 413, "body_too_large")
        # 1500x1000 = 1.5 megapixels of one colour: tiny file, too many pixels
        wide = image_bytes("PNG", (1500, 1000))
        assert len(wide) < 100_000
        r = await upload_image(c, alice, pid, wide)
        assert_error(r, 422, "too_many_pixels")
        assert "1500x1000" in r.json()["error"]["message"]
        assert await dump(store) == before
        # just under both limits is fine
        r = await upload_image(c, alice, pid, image_bytes("PNG", (1000, 1000)))
        assert r.status_code == 201, r.text


async def test_patch_image_key_only_to_own_uploads(
    client: httpx.AsyncClient, alice: Account, bob: Account, project: dict[str, Any]
) -> None:
    """PATCH may set an image node's image_key to an upload of its project, and to nothing else."""
    pid = project["id"]
    mine = (await upload_image(client, alice, pid, image_bytes())).json()
    other_pid = await make_project(client, alice, "Other")
    other = (await upload_image(client, alice, other_pid, image_bytes())).json()
    bob_pid = await make_project(client, bob, "Bob's")
    bobs = (await upload_image(client, bob, bob_pid, image_bytes())).json()
    node_url = f"/api/nodes/{project['image']}"
    for bad in (
        other["key"],
        bobs["key"],
        f"images/{pid}/{uuid.uuid4()}.png",
        f"images/{pid}/../{other_pid}/x.png",
        "http://169.254.169.254/latest/meta-data",
        "/etc/passwd",
        123,
    ):
        r = await client.patch(node_url, json={"data": {"image_key": bad}}, headers=alice.headers)
        assert_error(r, 422, "invalid_image_key")
    r = await client.patch(
        f"/api/nodes/{project['video']}",
        json={"data": {"image_key": mine["key"]}},
        headers=alice.headers,
    )
    assert_error(r, 422, "invalid_image_key")
    # image_url stays server-written
    r = await client.patch(
        node_url, json={"data": {"image_url": mine["url"]}}, headers=alice.headers
    )
    assert_error(r, 422, "reserved_data_key")
    # the key itself, or the URL the upload returned (stored as the key)
    for good in (mine["key"], mine["url"]):
        r = await client.patch(node_url, json={"data": {"image_key": good}}, headers=alice.headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["image_key"] == mine["key"]
        assert r.json()["data"]["image_url"].startswith("http")
