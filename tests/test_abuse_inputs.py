"""Edge inputs from the abuse probe (F6): huge numbers, invisible prompts, clients that leave."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tasks.storage.local import LocalStorage
from tests.support.accounts import Account
from tests.support.api import assert_error, make_node, make_project
from tests.support.metrics import scrape, value
from tests.support.servers import ServerThread
from tests.support.services import Services

#: every one of these has no character a person could see
INVISIBLE_PROMPTS = [
    "\u200b\u200b\u200b",  # zero-width spaces
    "\u200c\u200d\u2060\ufeff",  # joiners, word joiner, BOM
    " \u200b \u00ad ",  # spaces around a zero-width space and a soft hyphen
    "\u3164\u3164",  # Hangul filler, a "letter" that draws nothing
    "\u2800",  # braille blank
]


async def test_a_huge_exp_on_a_media_url_is_403(
    client: httpx.AsyncClient, services: Services, server: ServerThread
) -> None:
    """A media URL whose exp has 4,301 digits (past Python's int-string limit) is 403, not 500."""
    storage = LocalStorage(services.data_dir / "media", b"test-secret", base_url=server.base_url)
    await storage.put_bytes("images/p1/a.png", b"x", "image/png")
    for exp in ("9" * 4301, "9" * 40, "1" * 5000):
        r = await client.get("/media/images/p1/a.png", params={"exp": exp, "sig": "0" * 64})
        assert_error(r, 403, "invalid_signature")


@pytest.mark.parametrize("prompt", INVISIBLE_PROMPTS)
async def test_a_prompt_with_no_visible_character_is_refused(
    client: httpx.AsyncClient, alice: Account, prompt: str
) -> None:
    """generate-video, a new prompt node and a PATCH of one refuse an invisible prompt with 422."""
    pid = await make_project(client, alice)
    video = await make_node(client, alice, pid, "video")
    body: dict[str, Any] = {
        "node_id": video["id"],
        "prompt": prompt,
        "resolution": "720p",
        "duration": 4,
        "aspect_ratio": "16:9",
    }
    r = await client.post("/api/ai/generate-video", json=body, headers=alice.headers)
    assert_error(r, 422, "invalid_prompt")
    r = await client.post(
        f"/api/projects/{pid}/nodes",
        json={"type": "prompt", "data": {"prompt": prompt}},
        headers=alice.headers,
    )
    assert_error(r, 422, "invalid_prompt")
    node = await make_node(client, alice, pid, "prompt", data={"prompt": ""})
    r = await client.patch(
        f"/api/nodes/{node['id']}", json={"data": {"prompt": prompt}}, headers=alice.headers
    )
    assert_error(r, 422, "invalid_prompt")


async def test_a_prompt_node_may_still_be_empty_or_blank_while_typing(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """A prompt node holds "" or plain spaces (the canvas saves as the user types); text is kept."""
    pid = await make_project(client, alice)
    node = await make_node(client, alice, pid, "prompt", data={"prompt": ""})
    for text in (" ", "\n", "a fox\u200b in snow", "🦊"):
        r = await client.patch(
            f"/api/nodes/{node['id']}", json={"data": {"prompt": text}}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"]["prompt"] == text


async def test_a_client_leaving_mid_body_is_not_a_500(
    client: httpx.AsyncClient, server: ServerThread, alice: Account
) -> None:
    """A request whose client disconnects mid-body is counted as 499, never as a 500."""
    metrics = f"{server.base_url}/metrics"
    labels = {"route": "/api/projects", "method": "POST"}
    before = await scrape(metrics)
    head = (
        "POST /api/projects HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {alice.token}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head + b'{"name": "half')
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    def counted(samples: dict[Any, float], status: str) -> float:
        return value(samples, "canvasflow_http_requests_total", status=status, **labels) - value(
            before, "canvasflow_http_requests_total", status=status, **labels
        )

    async with asyncio.timeout(10):
        while True:
            after = await scrape(metrics)
            if counted(after, "499") + counted(after, "500") >= 3:
                break
            await asyncio.sleep(0.02)
    assert (counted(after, "499"), counted(after, "500")) == (3, 0)
