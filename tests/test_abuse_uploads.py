"""Upload abuse (F3): damaged files, trailing payloads, huge-but-small images, the storage quota."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

import server.decoding
from common.config import MAX_STORED_IMAGE_PIXELS
from db.changes import Store
from server.decoding import DecodeBudget
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_node, make_project
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import image_bytes, upload_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def truncated_png(width: int = 65535, height: int = 600) -> bytes:
    """A tiny PNG whose header declares `width` x `height` but whose pixel data stops at once."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)[:12]  # the start of a stream, cut off
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def stored_bytes(services: Services, key: str) -> bytes:
    """The object local storage holds at `key`."""
    return (services.data_dir / "media" / key).read_bytes()


async def test_damaged_images_are_refused_at_upload(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """A PNG declaring 65535x600 with truncated data, or a JPEG cut mid-scan, is 422."""
    pid = await make_project(client, alice)
    before = await dump(store)
    png = truncated_png()
    assert len(png) < 100
    jpeg = image_bytes("JPEG", (800, 600))
    noisy = io.BytesIO()
    Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)).save(noisy, "JPEG")
    for damaged in (png, jpeg[: len(jpeg) // 2], noisy.getvalue()[:20_000]):
        r = await upload_image(client, alice, pid, damaged)
        assert_error(r, 422, "unsupported_image")
    assert await dump(store) == before


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_bytes_after_the_image_are_not_stored(
    client: httpx.AsyncClient, alice: Account, services: Services, fmt: str
) -> None:
    """An image followed by a payload is stored as the image alone; size_bytes says so."""
    pid = await make_project(client, alice)
    image = image_bytes(fmt, (320, 200))
    payload = b"PK\x03\x04" + os.urandom(1 << 20)  # a zip, say
    r = await upload_image(client, alice, pid, image + payload)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["size_bytes"] == len(image)
    assert stored_bytes(services, body["key"]) == image


async def test_a_huge_image_is_stored_at_the_largest_size_a_job_needs(
    client: httpx.AsyncClient, alice: Account, services: Services
) -> None:
    """A small file of 6320x6320 pixels is decoded and stored downscaled to 2560x2560 at most."""
    pid = await make_project(client, alice)
    node = await make_node(client, alice, pid, "image")
    buf = io.BytesIO()
    Image.new("RGB", (6320, 6320), (30, 90, 200)).save(buf, "PNG")
    assert len(buf.getvalue()) < 300_000
    r = await upload_image(client, alice, pid, buf.getvalue(), node_id=node["id"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["width"] * body["height"] <= MAX_STORED_IMAGE_PIXELS
    assert (body["width"], body["height"]) == (2560, 2560)
    with Image.open(io.BytesIO(stored_bytes(services, body["key"]))) as stored:
        assert (stored.format, stored.size) == ("PNG", (2560, 2560))
        assert stored.getpixel((1000, 1000)) == (30, 90, 200)
    assert body["size_bytes"] == len(stored_bytes(services, body["key"]))


@pytest.fixture
def quota_server(services: Services) -> Iterator[ServerThread]:
    """A server whose users may keep 3 noise images (about 100 KB each)."""
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        storage_quota_bytes=3 * 100_000,
    )
    with ServerThread(settings, port) as srv:
        yield srv


def noise_png(seed: int) -> bytes:
    """A PNG of about 97 KB of random pixels (it does not compress)."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (180, 180), os.urandom(180 * 180 * 3)).save(buf, "PNG")
    data = buf.getvalue()
    assert 95_000 < len(data) < 100_000, (seed, len(data))
    return data


def media_files(services: Services) -> list[str]:
    """Every stored image file."""
    root = services.data_dir / "media" / "images"
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_the_storage_quota_holds_under_parallel_uploads(
    quota_server: ServerThread, alice: Account, bob: Account, services: Services
) -> None:
    """Of 8 parallel uploads with room for 3, exactly 3 are kept; the rest are 413, not stored."""
    async with httpx.AsyncClient(base_url=quota_server.base_url, timeout=30) as c:
        pid = await make_project(c, alice)
        before = media_files(services)
        results = await asyncio.gather(
            *(upload_image(c, alice, pid, noise_png(i)) for i in range(8))
        )
        statuses = sorted(r.status_code for r in results)
        assert statuses == [201] * 3 + [413] * 5, [r.text for r in results]
        refused = next(r for r in results if r.status_code == 413)
        assert_error(refused, 413, "storage_quota_exceeded")
        error: dict[str, Any] = refused.json()["error"]
        assert error["quota_bytes"] == 300_000 and error["used_bytes"] <= 300_000
        assert len(media_files(services)) == len(before) + 3
        # another user has a quota of their own
        bob_pid = await make_project(c, bob)
        assert (await upload_image(c, bob, bob_pid, noise_png(9))).status_code == 201
        # deleting a project gives its bytes back
        r = await c.delete(f"/api/projects/{pid}", headers=alice.headers)
        assert r.status_code == 204
        pid = await make_project(c, alice)
        assert (await upload_image(c, alice, pid, noise_png(10))).status_code == 201


async def test_the_decode_budget_lets_one_max_size_image_decode_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a budget of one image's pixels, parallel decodes run one after another."""
    running, most = 0, 0
    real = server.decoding.prepare_image

    def counting(*args: Any) -> server.decoding.PreparedImage:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return real(*args)
        finally:
            running -= 1

    monkeypatch.setattr(server.decoding, "prepare_image", counting)
    data = image_bytes("PNG", (1000, 1000))
    budget = DecodeBudget(1_000_000)
    prepared = await asyncio.gather(*(budget.prepare(data, 40_000_000) for _ in range(6)))
    assert [p.info.width for p in prepared] == [1000] * 6
    assert most == 1 and budget.in_use == 0
