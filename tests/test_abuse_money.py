"""Hostile traffic on the money routes (issue 17): estimates and Idempotency-Keys fed huge,
deeply nested and malformed input, flooded, and given up on mid-request. Every answer is a
4xx with a code or the estimate itself, nothing is spent, and the process serves on."""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from tests.support.accounts import Account, sign_up
from tests.support.api import assert_error, make_node, make_project
from tests.support.budgets import CLIP_COST, Rig, rig, usage, web
from tests.support.workers import video_body

__all__ = ["rig", "web"]

#: in USD: room for exactly two default clips
BUDGET = 2 * CLIP_COST
ROUTES = ("/api/ai/estimate", "/api/ai/estimate-image")


async def video_node(web: httpx.AsyncClient, who: Account) -> str:
    """A video node of a new project of `who`."""
    pid = await make_project(web, who)
    return str((await make_node(web, who, pid, "video"))["id"])


async def post_raw(web: httpx.AsyncClient, who: Account, path: str, raw: bytes) -> httpx.Response:
    """POST `raw` as a JSON body."""
    headers = {**who.headers, "Content-Type": "application/json"}
    return await web.post(path, content=raw, headers=headers)


async def test_estimates_refuse_huge_nested_and_malformed_bodies_with_a_code(
    web: httpx.AsyncClient,
) -> None:
    """Over the body limit: 413; nested past the decoder: 422; broken JSON: 400; absurd
    numbers, wrong types and (for the image route) a video's fields: 4xx with a code. The
    same for both estimate routes; nothing is reserved."""
    alice = await sign_up(web)
    node = await video_node(web, alice)
    for path in ROUTES:
        huge = json.dumps({"node_id": node, "prompt": "x" * (2 << 20)}).encode()
        assert_error(await post_raw(web, alice, path, huge), 413, "body_too_large")
        deep = b'{"node_id": "' + node.encode() + b'", "prompt": ' + b"[" * 100_000
        deep += b"]" * 100_000 + b"}"
        r = await post_raw(web, alice, path, deep)
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"] in ("invalid_body", "malformed_json"), r.text
        assert_error(await post_raw(web, alice, path, b'{"node_id": '), 400, "malformed_json")
        for bad in (
            {**video_body(node), "duration": 10**400},
            {**video_body(node), "duration": -8},
            {**video_body(node), "number_of_videos": 10**9},
            {**video_body(node), "node_id": {"$gt": ""}},
        ):
            r = await post_raw(web, alice, path, json.dumps(bad).encode())
            assert r.status_code in (400, 404, 422), (bad, r.text)
            assert r.json()["error"]["code"], r.text
    spent = await usage(web, alice)
    assert spent["reserved"] == 0 and spent["spent"] == 0, spent


async def test_idempotency_keys_that_are_huge_or_not_ascii_are_refused_and_spend_nothing(
    web: httpx.AsyncClient,
) -> None:
    """A key past the length limit, empty, with control or non-ASCII characters: 422
    `invalid_idempotency_key` (or 431 past the header limit), and no job is made."""
    alice = await sign_up(web)
    node = await video_node(web, alice)
    for key in ("k" * 300, "k" * 20_000, "clé-1", "tab\there"):
        r = await web.post(
            "/api/ai/generate-video",
            json=video_body(node),
            # as bytes: what a client sends on the wire, Latin-1 included
            headers=[
                *((k.encode(), v.encode()) for k, v in alice.headers.items()),
                (b"Idempotency-Key", key.encode("latin-1")),
            ],
        )
        if r.status_code == 431:
            continue  # refused by the server's header limit before any code ran
        assert_error(r, 422, "invalid_idempotency_key")
    spent = await usage(web, alice)
    assert spent["reserved"] == 0, spent
    # and the node is free: a well-formed request goes through
    r = await web.post(
        "/api/ai/generate-video",
        json=video_body(node),
        headers={**alice.headers, "Idempotency-Key": "fine-1"},
    )
    assert r.status_code == 202, r.text


async def test_a_flood_of_estimates_spends_nothing_and_the_process_serves_on(
    web: httpx.AsyncClient, rig: Rig
) -> None:
    """400 estimates, 50 at a time, half of them abandoned at a random moment: every answer
    that arrives is the estimate, nothing is reserved, and the pool is whole afterwards
    (a generate and a /healthz answer at once)."""
    alice = await sign_up(web)
    node = await video_node(web, alice)
    limits = httpx.Limits(max_connections=50)
    rng = random.Random(17)
    async with httpx.AsyncClient(base_url=rig.server.base_url, timeout=60, limits=limits) as c:

        async def one(i: int) -> int | None:
            request = c.post(ROUTES[0], json=video_body(node), headers=alice.headers)
            if i % 2:
                try:
                    # a client that gives up mid-request, at a random await of the server
                    async with asyncio.timeout(rng.uniform(0.0, 0.02)):
                        return (await request).status_code
                except TimeoutError:
                    return None
            return (await request).status_code

        statuses = await asyncio.gather(*(one(i) for i in range(400)))
    answered = [s for s in statuses if s is not None]
    print(f"answered {len(answered)} of 400; statuses {sorted(set(answered))}")
    assert answered and all(s in (200, 429) for s in answered), sorted(set(answered))
    assert statuses.count(200) >= 200  # none of the ones that waited was refused
    spent = await usage(web, alice)
    assert spent["reserved"] == 0 and spent["spent"] == 0, spent
    async with asyncio.timeout(10):
        health = await web.get("/healthz")
        assert health.status_code == 200, health.text
        r = await web.post("/api/ai/generate-video", json=video_body(node), headers=alice.headers)
        assert r.status_code == 202, r.text
    assert (await usage(web, alice))["reserved"] == CLIP_COST
