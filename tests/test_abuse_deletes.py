"""Deleted media (F8): deleting a project or a node removes its files, and its URLs are 404.

Videos come from real jobs rendered by a real worker; GCS runs through the
real google-cloud-storage client against the loopback fake.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tasks.storage.base import StorageError
from tasks.storage.gcs import GcsStorage
from tests.fakes.gcs import FakeGcs
from tests.support.accounts import Account, sign_up
from tests.support.api import assert_error, make_connection, make_node, make_project
from tests.support.gcs import BUCKET
from tests.support.services import Services, settings_for
from tests.support.workers import WorkerHarness, image_bytes, upload_image, video_body, wait_for_job


async def rendered_canvas(
    client: httpx.AsyncClient, who: Account, services: Services
) -> dict[str, Any]:
    """A project with an image node, an image upload on it and a video node rendered from both."""
    pid = await make_project(client, who)
    image = await make_node(client, who, pid, "image")
    prompt = await make_node(client, who, pid, "prompt", data={"prompt": "a fox"})
    video = await make_node(client, who, pid, "video")
    await make_connection(client, who, pid, prompt["id"], video["id"])
    await make_connection(client, who, pid, image["id"], video["id"])
    upload = (await upload_image(client, who, pid, image_bytes(), node_id=image["id"])).json()
    r = await client.post(
        "/api/ai/generate-video",
        json=video_body(video["id"], image_url=upload["key"]),
        headers=who.headers,
    )
    assert r.status_code == 202, r.text
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
    job = await wait_for_job(client, who, r.json()["job_id"])
    assert job["status"] == "completed", job
    return {
        "project": pid,
        "image": image["id"],
        "video": video["id"],
        "image_key": upload["key"],
        "image_url": upload["url"],
        "video_key": job["result"]["video_key"],
        "video_url": job["result"]["video_url"],
    }


def stored(services: Services, key: str) -> bool:
    """Whether local storage holds `key`."""
    return (services.data_dir / "media" / key).exists()


@pytest.mark.timeout(90)
async def test_deleting_a_project_removes_its_media_at_once(
    client: httpx.AsyncClient, alice: Account, services: Services
) -> None:
    """After the 204 the project's image and video files are gone and their URLs are 404."""
    canvas = await rendered_canvas(client, alice, services)
    for key in ("image", "video"):
        assert stored(services, canvas[f"{key}_key"])
        assert (await client.get(canvas[f"{key}_url"])).status_code == 200
    r = await client.delete(f"/api/projects/{canvas['project']}", headers=alice.headers)
    assert r.status_code == 204
    for key in ("image", "video"):
        assert not stored(services, canvas[f"{key}_key"])
        assert_error(await client.get(canvas[f"{key}_url"]), 404, "media_not_found")
    # the project's folders go too
    assert not (services.data_dir / "media" / "images" / canvas["project"]).exists()


@pytest.mark.timeout(90)
async def test_deleting_a_node_removes_the_media_only_it_used(
    client: httpx.AsyncClient, alice: Account, services: Services
) -> None:
    """A deleted video node takes its videos; an image node takes its image unless still used."""
    canvas = await rendered_canvas(client, alice, services)
    r = await client.delete(f"/api/nodes/{canvas['video']}", headers=alice.headers)
    assert r.status_code == 204
    assert not stored(services, canvas["video_key"])
    assert_error(await client.get(canvas["video_url"]), 404, "media_not_found")
    # a second image node on the same upload keeps it alive through the first one's deletion
    twin = await make_node(client, alice, canvas["project"], "image")
    r = await client.patch(
        f"/api/nodes/{twin['id']}",
        json={"data": {"image_key": canvas["image_key"]}},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    assert (
        await client.delete(f"/api/nodes/{canvas['image']}", headers=alice.headers)
    ).status_code == 204
    assert stored(services, canvas["image_key"])
    assert (await client.get(canvas["image_url"])).status_code == 200
    assert (
        await client.delete(f"/api/nodes/{twin['id']}", headers=alice.headers)
    ).status_code == 204
    assert not stored(services, canvas["image_key"])
    assert_error(await client.get(canvas["image_url"]), 404, "media_not_found")
    # and the upload no longer names anything: it cannot be attached again
    other = await make_node(client, alice, canvas["project"], "image")
    r = await client.patch(
        f"/api/nodes/{other['id']}",
        json={"data": {"image_key": canvas["image_key"]}},
        headers=alice.headers,
    )
    assert_error(r, 422, "invalid_image_key")


async def test_gcs_delete_through_the_sdk(gcs: GcsStorage, gcs_env: FakeGcs) -> None:
    """GcsStorage.delete removes the object; deleting a missing one is no error."""
    await gcs.put_bytes("images/p1/gone.png", b"png", "image/png")
    assert (BUCKET, "images/p1/gone.png") in gcs_env.objects
    await gcs.delete("images/p1/gone.png")
    assert (BUCKET, "images/p1/gone.png") not in gcs_env.objects
    await gcs.delete("images/p1/gone.png")
    with pytest.raises(StorageError):
        await gcs.get_bytes("images/p1/gone.png")
    assert any(r.method == "DELETE" for r in gcs_env.requests)


async def test_deleting_a_project_removes_its_gcs_objects(
    gcs_web: httpx.AsyncClient, gcs_env: FakeGcs
) -> None:
    """With GCS, a deleted project's objects leave the bucket and its signed URLs are 404."""
    who = await sign_up(gcs_web)
    pid = await make_project(gcs_web, who)
    node = await make_node(gcs_web, who, pid, "image")
    body = (await upload_image(gcs_web, who, pid, image_bytes("JPEG"), node_id=node["id"])).json()
    async with httpx.AsyncClient() as http:
        assert (await http.get(body["url"])).status_code == 200
        r = await gcs_web.delete(f"/api/projects/{pid}", headers=who.headers)
        assert r.status_code == 204
        assert (BUCKET, body["key"]) not in gcs_env.objects
        assert (await http.get(body["url"])).status_code == 404
