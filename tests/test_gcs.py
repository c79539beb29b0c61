"""GcsStorage through the real google-cloud-storage client against the loopback GCS fake.

Credentials are a service-account key generated for the run: the fake checks
the OAuth JWT and every V4 URL signature with its public key.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import google.auth.exceptions
import httpx
import pytest
from google.cloud import storage
from google.oauth2.credentials import Credentials as UserCredentials

from common.config import Settings
from tasks.storage.auto import make_storage
from tasks.storage.base import StorageError
from tasks.storage.gcs import GcsStorage
from tasks.storage.local import LocalStorage
from tests.fakes.gcs import SA_EMAIL, FakeGcs
from tests.fakes.iam import SignBlobProxy
from tests.support.accounts import sign_up
from tests.support.api import make_node, make_project
from tests.support.gcs import BUCKET
from tests.support.workers import image_bytes, upload_image, video_body


async def test_small_upload_is_multipart_with_content_type(
    gcs: GcsStorage, gcs_env: FakeGcs
) -> None:
    """put_bytes sends one authenticated multipart upload; the object keeps its content type and bytes."""
    data = image_bytes()
    await gcs.put_bytes("images/p1/a.png", data, "image/png")
    uploads = [r for r in gcs_env.requests if r.path.startswith("/upload/")]
    assert [(r.method, r.path, r.query["uploadType"]) for r in uploads] == [
        ("POST", f"/upload/storage/v1/b/{BUCKET}/o", "multipart")
    ]
    assert uploads[0].headers["authorization"].startswith("Bearer ya29.fake-")
    stored = gcs_env.objects[(BUCKET, "images/p1/a.png")]
    assert (stored.data, stored.content_type) == (data, "image/png")
    assert await gcs.get_bytes("images/p1/a.png") == data


async def test_large_file_upload_is_resumable_in_chunks(
    gcs: GcsStorage, gcs_env: FakeGcs, tmp_path: Path
) -> None:
    """A 9 MiB video goes up as a resumable upload in 8 MiB chunks, off the event loop."""
    path = tmp_path / "video.mp4"
    data = os.urandom(9 << 20)
    path.write_bytes(data)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await gcs.put_file("videos/p1/j1.mp4", path, "video/mp4")
    ticker.cancel()
    uploads = [
        (r.method, r.query.get("uploadType"), r.size)
        for r in gcs_env.requests
        if r.path.startswith("/upload/")
    ]
    assert uploads[0][:2] == ("POST", "resumable")
    assert [u[2] for u in uploads[1:]] == [8 << 20, 1 << 20]
    assert {u[:2] for u in uploads[1:]} == {("PUT", "resumable")}
    stored = gcs_env.objects[(BUCKET, "videos/p1/j1.mp4")]
    assert (stored.data == data, stored.content_type) == (True, "video/mp4")
    # the loop kept running while the SDK uploaded in a thread
    assert ticks > 5


async def test_missing_object_is_a_storage_error(gcs: GcsStorage) -> None:
    """get_bytes of a key nobody stored raises StorageError (the worker fails the job, no retry)."""
    with pytest.raises(StorageError, match=r"no object at 'images/p1/none\.png'"):
        await gcs.get_bytes("images/p1/none.png")


async def test_signed_url_fetches_the_object(gcs: GcsStorage, gcs_env: FakeGcs) -> None:
    """A V4 signed URL signed with the service-account key fetches the object with its content type."""
    await gcs.put_bytes("videos/p1/j2.mp4", b"mp4 bytes", "video/mp4")
    url = await gcs.sign_url("videos/p1/j2.mp4", 3600)
    assert url.startswith(gcs.url_prefix + "videos/p1/j2.mp4?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith(f"{SA_EMAIL}/")
    assert query["X-Goog-Expires"] == ["3600"]
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200, r.text
    assert (r.content, r.headers["content-type"]) == (b"mp4 bytes", "video/mp4")
    assert gcs_env.refusals == []


async def test_signed_url_is_for_one_object_only(gcs: GcsStorage, gcs_env: FakeGcs) -> None:
    """The signature of one key does not open another, nor survive a changed expiry."""
    await gcs.put_bytes("videos/p1/a.mp4", b"a", "video/mp4")
    await gcs.put_bytes("videos/p1/b.mp4", b"b", "video/mp4")
    url = await gcs.sign_url("videos/p1/a.mp4", 3600)
    async with httpx.AsyncClient() as http:
        other = await http.get(url.replace("/a.mp4?", "/b.mp4?"))
        longer = await http.get(url.replace("X-Goog-Expires=3600", "X-Goog-Expires=7200"))
    assert (other.status_code, longer.status_code) == (403, 403)
    assert gcs_env.refusals == ["signature", "signature"]


async def test_signed_url_lifetime_is_capped_and_expires(gcs: GcsStorage, gcs_env: FakeGcs) -> None:
    """A lifetime over 7 days is signed as 7 days; a 1 s URL is refused once it has expired."""
    await gcs.put_bytes("videos/p1/c.mp4", b"c", "video/mp4")
    long_url = await gcs.sign_url("videos/p1/c.mp4", 30 * 24 * 3600)
    assert parse_qs(urlsplit(long_url).query)["X-Goog-Expires"] == ["604800"]
    short_url = await gcs.sign_url("videos/p1/c.mp4", 1)
    gcs_env.clock_offset_s = 2.0  # two seconds later, for the fake
    async with httpx.AsyncClient() as http:
        assert (await http.get(long_url)).status_code == 200
        assert (await http.get(short_url)).status_code == 403
    assert gcs_env.refusals == ["expired"]


async def test_workload_credentials_sign_through_iam_signblob(
    gcs: GcsStorage, gcs_env: FakeGcs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials without a private key (GKE, Cloud Run) sign URLs through IAM signBlob.

    The SDK's call to iamcredentials.googleapis.com goes through HTTPS_PROXY to
    the loopback fake, which signs with the service account's key; the GCS fake
    then serves the URL only if that signature verifies.
    """
    await gcs.put_bytes("videos/p1/j3.mp4", b"workload bytes", "video/mp4")
    token = "workload-access-token"
    with SignBlobProxy(tmp_path, gcs_env.key, token) as iam:
        monkeypatch.setenv("HTTPS_PROXY", iam.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(iam.ca_file))
        workload = GcsStorage(
            storage.Client(project="fake-project", credentials=UserCredentials(token=token)),  # type: ignore[no-untyped-call]
            BUCKET,
            signer_email=SA_EMAIL,
        )
        url = await workload.sign_url("videos/p1/j3.mp4", 600)
        refused = GcsStorage(
            storage.Client(project="fake-project", credentials=UserCredentials(token="stale")),  # type: ignore[no-untyped-call]
            BUCKET,
            signer_email=SA_EMAIL,
        )
        with pytest.raises(google.auth.exceptions.TransportError, match="signBytes"):
            await refused.sign_url("videos/p1/j3.mp4", 600)
    [call] = iam.calls
    assert call.path == f"/v1/projects/-/serviceAccounts/{SA_EMAIL}:signBlob?alt=json"
    assert call.payload.startswith(b"GOOG4-RSA-SHA256\n")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Credential"][0].startswith(f"{SA_EMAIL}/")
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"workload bytes"
    assert gcs_env.refusals == []


def test_local_storage_stays_the_default(tmp_path: Path) -> None:
    """Without GCS_BUCKET the storage is the local folder, and google-cloud-storage is not needed."""
    assert isinstance(make_storage(Settings(data_dir=tmp_path, secret_key="s")), LocalStorage)


async def test_uploads_and_nodes_through_gcs(gcs_web: httpx.AsyncClient, gcs_env: FakeGcs) -> None:
    """An upload lands in the bucket; its signed URL serves it and names it in generate-video."""
    who = await sign_up(gcs_web)
    pid = await make_project(gcs_web, who)
    image_node = await make_node(gcs_web, who, pid, "image")
    data = image_bytes("JPEG")
    r = await upload_image(gcs_web, who, pid, data, node_id=image_node["id"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["key"].startswith(f"images/{pid}/") and body["key"].endswith(".jpg")
    stored = gcs_env.objects[(BUCKET, body["key"])]
    assert (stored.data, stored.content_type) == (data, "image/jpeg")
    assert body["url"].startswith(
        f"{os.environ['STORAGE_EMULATOR_HOST']}/{BUCKET}/{body['key']}?X-Goog-"
    )
    assert body["node"]["data"]["image_url"].startswith(
        f"{os.environ['STORAGE_EMULATOR_HOST']}/{BUCKET}/"
    )
    async with httpx.AsyncClient() as http:
        fetched = await http.get(body["url"])
    assert (fetched.status_code, fetched.content) == (200, data)
    video = await make_node(gcs_web, who, pid, "video")
    r = await gcs_web.post(
        "/api/ai/generate-video",
        json=video_body(video["id"], image_url=body["url"]),
        headers=who.headers,
    )
    assert r.status_code == 202, r.text
    # a URL of the bucket that names another project's key is still refused
    foreign = body["url"].replace(
        f"/images/{pid}/", "/images/00000000-0000-0000-0000-000000000000/"
    )
    other = await make_node(gcs_web, who, pid, "video")
    r = await gcs_web.post(
        "/api/ai/generate-video",
        json=video_body(other["id"], image_url=foreign),
        headers=who.headers,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_image_url")
    # the same object path in another bucket, or on another host, is not ours either
    for elsewhere in (
        body["url"].replace(f"/{BUCKET}/", "/someone-elses-bucket/"),
        "https://storage.example.net/" + body["url"].split("/", 3)[3],
    ):
        r = await gcs_web.post(
            "/api/ai/generate-video",
            json=video_body(other["id"], image_url=elsewhere),
            headers=who.headers,
        )
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_image_url"), elsewhere
