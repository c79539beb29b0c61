"""GET /media/{key}: HMAC-signed, expiring URLs over local storage; no path escapes its root."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tasks.storage.local import LocalStorage
from tests.support.api import assert_error
from tests.support.servers import ServerThread
from tests.support.services import Services

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40


@pytest.fixture
def storage(services: Services, server: ServerThread) -> LocalStorage:
    """The test server's storage, signing with its secret and base URL."""
    return LocalStorage(services.data_dir / "media", b"test-secret", base_url=server.base_url)


async def test_signed_url_serves_file_with_type(
    client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    """A fresh signed URL returns the bytes with the type of the extension and a private cache."""
    key = "videos/p1/j1.mp4"
    await storage.put_bytes(key, VIDEO, "video/mp4")
    url = await storage.sign_url(key, 60)
    r = await client.get(url)
    assert r.status_code == 200
    assert r.content == VIDEO
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"].startswith("private, max-age=")
    assert r.headers["x-content-type-options"] == "nosniff"
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(VIDEO))
    for key, ctype in (
        ("images/p1/a.png", "image/png"),
        ("images/p1/a.jpg", "image/jpeg"),
        ("images/p1/a.webp", "image/webp"),
    ):
        await storage.put_bytes(key, b"x", ctype)
        r = await client.get(await storage.sign_url(key, 60))
        assert r.headers["content-type"] == ctype


async def test_range_requests(client: httpx.AsyncClient, storage: LocalStorage) -> None:
    """Range requests (a <video> seeking) get 206 with the slice; impossible ranges get 416."""
    key = "videos/p1/range.mp4"
    await storage.put_bytes(key, VIDEO, "video/mp4")
    url = await storage.sign_url(key, 60)
    r = await client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == VIDEO[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(VIDEO)}"
    r = await client.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == VIDEO[-10:]
    r = await client.get(url, headers={"Range": f"bytes={len(VIDEO) + 10}-"})
    assert r.status_code == 416


async def test_tampered_and_expired_signatures(
    client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    """A changed key, expiry or signature, a missing one, or a past expiry is 403 invalid_signature."""
    key = "videos/p1/secret.mp4"
    other = "videos/p1/other.mp4"
    await storage.put_bytes(key, VIDEO, "video/mp4")
    await storage.put_bytes(other, b"other", "video/mp4")
    url = await storage.sign_url(key, 60)
    query = parse_qs(urlsplit(url).query)
    exp, sig = query["exp"][0], query["sig"][0]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    base = f"/media/{key}"
    expired_at = int(time.time()) - 5
    expired_sig = storage.signature(key, expired_at)
    for bad in (
        f"{base}?exp={exp}&sig={flipped}",
        f"{base}?exp={int(exp) + 1000}&sig={sig}",
        f"/media/{other}?exp={exp}&sig={sig}",
        f"{base}?exp={exp}",
        f"{base}?sig={sig}",
        base,
        f"{base}?exp=-1&sig={sig}",
        f"{base}?exp={expired_at}&sig={expired_sig}",
        f"{base}?exp={exp}&sig={storage.signature(key, int(exp)).upper()}",
        f"{base}?exp={exp}&sig=%C3%86%C3%9E",
        f"{base}?exp=%C2%B2&sig={sig}",
    ):
        assert_error(await client.get(bad), 403, "invalid_signature")
    # a signature made with another secret is worthless
    forged = LocalStorage(storage.root, b"guessed-secret", base_url=storage.base_url)
    assert_error(await client.get(await forged.sign_url(key, 60)), 403, "invalid_signature")


async def test_path_traversal_cannot_escape_root(
    client: httpx.AsyncClient, storage: LocalStorage, services: Services
) -> None:
    """Keys with .., absolute paths, encoded slashes or odd characters never reach the filesystem."""
    secret = services.data_dir / "outside.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("not for you")
    # even a valid signature over the raw traversal key does not help
    for key in ("../outside.txt", "videos/../../outside.txt", "/etc/passwd", "videos/%2e%2e/x"):
        sig = storage.signature(key, int(time.time()) + 60)
        r = await client.get(f"/media/{quote(key, safe='/')}?exp={int(time.time()) + 60}&sig={sig}")
        assert r.status_code in (403, 404), (key, r.status_code)
        assert b"not for you" not in r.content
    for raw in (
        "/media/..%2Foutside.txt",
        "/media/videos/..%2f..%2foutside.txt",
        "/media/%2e%2e/outside.txt",
        "/media/videos/p1/a%00.mp4",
        "/media/.hidden",
    ):
        r = await client.get(raw + "?exp=9999999999&sig=00")
        assert r.status_code in (403, 404), (raw, r.status_code)
        assert b"not for you" not in r.content


async def test_missing_object_is_404(client: httpx.AsyncClient, storage: LocalStorage) -> None:
    """A valid signature for a key with no object is 404 media_not_found."""
    url = await storage.sign_url("videos/p1/never-made.mp4", 60)
    assert_error(await client.get(url), 404, "media_not_found")
