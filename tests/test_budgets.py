"""Money: prices, estimates, budgets that cannot be overspent, and idempotent submit (issue 17).

Real Postgres, Redis, web process and workers; Veo is the loopback fake driven
through google-genai, so jobs cost the default list prices (tests/budget_utils.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from db.changes import Store
from tests.support.accounts import Account, sign_up
from tests.support.api import assert_error, make_node, make_project
from tests.support.budgets import (
    BUDGET,
    CLIP_COST,
    MICROS,
    Rig,
    budget_row,
    ledger,
    rig,
    usage,
    web,
)
from tests.support.metrics import scrape, value
from tests.support.services import Services
from tests.support.waits import until
from tests.support.workers import WorkerHarness, job_row, video_body, wait_for_job, worker_process

__all__ = ["rig", "web"]


async def video_nodes(client: httpx.AsyncClient, who: Account, count: int) -> list[str]:
    """A new project with `count` video nodes; their ids."""
    pid = await make_project(client, who)
    return [(await make_node(client, who, pid, "video", x=i * 10))["id"] for i in range(count)]


async def generate(
    client: httpx.AsyncClient, who: Account, node_id: str, **headers: str
) -> httpx.Response:
    """POST generate-video with the default test clip."""
    return await client.post(
        "/api/ai/generate-video", json=video_body(node_id), headers={**who.headers, **headers}
    )


async def test_twenty_concurrent_submits_against_a_budget_of_three(
    web: httpx.AsyncClient, store: Store
) -> None:
    """20 submits at once against a budget of three clips: exactly 3 jobs, 17 refused with 402, never below 0."""
    alice = await sign_up(web)
    nodes = await video_nodes(web, alice, 20)
    answers = await asyncio.gather(*(generate(web, alice, n) for n in nodes))
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {202: 3, 402: 17}, [
        r.text for r in answers if r.status_code not in (202, 402)
    ]
    for r in answers:
        if r.status_code == 402:
            assert_error(r, 402, "budget_exceeded")
            error = r.json()["error"]
            assert (error["cost"], error["budget_remaining"], error["currency"]) == (
                CLIP_COST,
                0.0,
                "USD",
            )
        else:
            assert r.json()["reserved_cost"] == CLIP_COST and r.json()["final_cost"] is None
    assert await store.db.fetch_val("SELECT count(*) FROM jobs") == 3
    row = await budget_row(store, alice)
    assert (row["spent"], row["reserved"]) == (0, round(BUDGET * MICROS))
    entries = await ledger(store)
    assert [e["kind"] for e in entries] == ["reserve"] * 3
    assert all(e["amount"] == round(CLIP_COST * MICROS) for e in entries)
    mine = await usage(web, alice)
    assert {k: mine[k] for k in ("spent", "reserved", "remaining", "budget", "currency")} == {
        "spent": 0.0,
        "reserved": BUDGET,
        "remaining": 0.0,
        "budget": BUDGET,
        "currency": "USD",
    }
    # the refused nodes were left as they were: idle, no job
    idle = await store.db.fetch_val("SELECT count(*) FROM nodes WHERE status = 'idle'")
    assert idle == 17


async def test_completed_settles_failed_cancelled_and_blocked_release(
    web: httpx.AsyncClient, rig: Rig, store: Store
) -> None:
    """A completed job settles its cost; a failed, a cancelled and a safety-blocked one release it."""
    metrics_url = f"{rig.server.base_url}/metrics"
    before = await scrape(metrics_url)
    alice = await sign_up(web)
    done_node, failed_node, cancelled_node, blocked_node = await video_nodes(web, alice, 4)
    async with WorkerHarness(rig.worker_settings) as harness:
        completed = (await generate(web, alice, done_node)).json()
        await harness.drain()
        rig.reset(outcome="error")
        failed = (await generate(web, alice, failed_node)).json()
        await harness.drain()
        rig.reset(outcome="safety")
        blocked = (await generate(web, alice, blocked_node)).json()
        await harness.drain()
    cancelled = (await generate(web, alice, cancelled_node)).json()
    r = await web.post(f"/api/ai/jobs/{cancelled['job_id']}/cancel", headers=alice.headers)
    assert r.status_code == 200, r.text
    jobs = {
        name: await wait_for_job(web, alice, job["job_id"])
        for name, job in [
            ("completed", completed),
            ("failed", failed),
            ("blocked", blocked),
            ("cancelled", cancelled),
        ]
    }
    assert {k: j["status"] for k, j in jobs.items()} == {
        "completed": "completed",
        "failed": "failed",
        "blocked": "failed",
        "cancelled": "cancelled",
    }
    assert "safety" in jobs["blocked"]["error"]
    assert {k: (j["reserved_cost"], j["final_cost"]) for k, j in jobs.items()} == {
        "completed": (CLIP_COST, CLIP_COST),
        "failed": (CLIP_COST, 0.0),
        "blocked": (CLIP_COST, 0.0),
        "cancelled": (CLIP_COST, 0.0),
    }
    closes = {
        str(e["job_id"]): (e["kind"], e["amount"])
        for e in await ledger(store)
        if e["entry"] == "close"
    }
    assert closes == {
        completed["job_id"]: ("settle", round(CLIP_COST * MICROS)),
        failed["job_id"]: ("release", 0),
        blocked["job_id"]: ("release", 0),
        cancelled["job_id"]: ("release", 0),
    }
    row = await budget_row(store, alice)
    assert (row["spent"], row["reserved"]) == (round(CLIP_COST * MICROS), 0)
    mine = await usage(web, alice)
    assert (mine["spent"], mine["reserved"], mine["remaining"]) == (
        CLIP_COST,
        0.0,
        pytest.approx(BUDGET - CLIP_COST),
    )
    # the web process and the in-process workers share one registry: the money moved
    after = await scrape(metrics_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    money = {
        kind: moved("canvasflow_budget_money_total", kind=kind)
        for kind in ("reserved", "settled", "released")
    }
    assert money == pytest.approx(
        {"reserved": 4 * CLIP_COST, "settled": CLIP_COST, "released": 3 * CLIP_COST}
    ), money
    assert moved("canvasflow_eta_actual_seconds_count", type="video") == 1


async def test_deleting_a_node_with_a_live_job_gives_its_reservation_back(
    web: httpx.AsyncClient, store: Store
) -> None:
    """A pending job deleted with its node (or project) releases what it reserved."""
    alice = await sign_up(web)
    first, second = await video_nodes(web, alice, 2)
    assert (await generate(web, alice, first)).status_code == 202
    assert (await generate(web, alice, second)).status_code == 202
    assert (await web.delete(f"/api/nodes/{first}", headers=alice.headers)).status_code == 204
    assert (await usage(web, alice))["reserved"] == CLIP_COST
    pid = (await web.get(f"/api/nodes/{second}", headers=alice.headers)).json()["project_id"]
    assert (await web.delete(f"/api/projects/{pid}", headers=alice.headers)).status_code == 204
    row = await budget_row(store, alice)
    assert (row["spent"], row["reserved"]) == (0, 0)


@pytest.mark.timeout(120)
async def test_worker_killed_mid_job_and_taken_over_settles_once(
    web: httpx.AsyncClient, rig: Rig, services: Services, store: Store
) -> None:
    """SIGKILL a worker while Veo works; the worker that takes the job over completes and settles it once."""
    rig.reset(polls_until_done=9)
    first = worker_process(services, **rig.veo_env).start()
    second = worker_process(services, **rig.veo_env)
    alice = await sign_up(web)
    [node] = await video_nodes(web, alice, 1)
    try:
        job = (await generate(web, alice, node)).json()

        async def operation_saved() -> bool:
            assert first.alive, first.log()[-3000:]
            return (await job_row(store, job["job_id"]))["provider_operation"] is not None

        await until(operation_saved, "the first worker to submit to Veo", timeout_s=60)
        first.kill()
        row = await job_row(store, job["job_id"])
        assert (row["status"], row["attempts"]) == ("processing", 1), row
        second.start()
        done = await wait_for_job(web, alice, job["job_id"], timeout_s=90)
        assert done["status"] == "completed", (done, second.log()[-3000:])
    finally:
        first.kill()
        second.kill()
    assert rig.fake.generations_started == 1  # the takeover resumed the operation
    assert (await job_row(store, job["job_id"]))["attempts"] == 2
    assert done["final_cost"] == CLIP_COST
    entries = [(e["entry"], e["kind"]) for e in await ledger(store)]
    assert entries == [("reserve", "reserve"), ("close", "settle")]
    row = await budget_row(store, alice)
    assert (row["spent"], row["reserved"]) == (round(CLIP_COST * MICROS), 0)


async def test_an_idempotency_key_sent_ten_times_at_once_makes_one_job(
    web: httpx.AsyncClient, store: Store
) -> None:
    """The same Idempotency-Key and body ten times at once: one job, one reservation, the same answer."""
    alice = await sign_up(web)
    [node] = await video_nodes(web, alice, 1)
    key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(generate(web, alice, node, **{"Idempotency-Key": key}) for _ in range(10))
    )
    assert sorted(r.status_code for r in answers) == [200] * 9 + [202], [r.text for r in answers]
    assert len({r.json()["job_id"] for r in answers}) == 1
    assert await store.db.fetch_val("SELECT count(*) FROM jobs") == 1
    assert [e["kind"] for e in await ledger(store)] == ["reserve"]
    # later, the same again: the same job; another body under the key: refused
    again = await generate(web, alice, node, **{"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["job_id"] == answers[0].json()["job_id"]
    other = await web.post(
        "/api/ai/generate-video",
        json=video_body(node, prompt="another boat"),
        headers={**alice.headers, "Idempotency-Key": key},
    )
    assert_error(other, 422, "idempotency_key_reused")
    # keys are per user: bob's same key is his own
    bob = await sign_up(web)
    [bobs] = await video_nodes(web, bob, 1)
    assert (await generate(web, bob, bobs, **{"Idempotency-Key": key})).status_code == 202
    assert_error(
        await generate(web, alice, node, **{"Idempotency-Key": ""}), 422, "invalid_idempotency_key"
    )


async def test_an_idempotent_image_submit_returns_the_same_job(
    web: httpx.AsyncClient, store: Store
) -> None:
    """generate-image honours Idempotency-Key too: the repeat answers 200 with the first job."""
    alice = await sign_up(web)
    pid = await make_project(web, alice)
    node = await make_node(web, alice, pid, "image_gen")
    body = {"node_id": node["id"], "prompt": "a red kite", "aspect_ratio": "1:1"}
    headers = {**alice.headers, "Idempotency-Key": "kite-1"}
    first = await web.post("/api/ai/generate-image", json=body, headers=headers)
    second = await web.post("/api/ai/generate-image", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200), (first.text, second.text)
    assert first.json()["job_id"] == second.json()["job_id"]
    assert first.json()["reserved_cost"] == 0.039  # gemini-2.5-flash-image's list price
    assert await store.db.fetch_val("SELECT count(*) FROM jobs") == 1


async def test_estimates_answer_the_cost_and_what_remains(web: httpx.AsyncClient) -> None:
    """POST /api/ai/estimate and /estimate-image price the generate bodies and show the budget left."""
    alice = await sign_up(web)
    pid = await make_project(web, alice)
    video = await make_node(web, alice, pid, "video")
    image = await make_node(web, alice, pid, "image_gen")
    r = await web.post("/api/ai/estimate", json=video_body(video["id"]), headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"cost": CLIP_COST, "currency": "USD", "budget_remaining": BUDGET}
    r = await web.post(
        "/api/ai/estimate",
        json=video_body(video["id"], duration=8, number_of_videos=2, generate_audio=True),
        headers=alice.headers,
    )
    assert r.status_code == 200 and r.json()["cost"] == pytest.approx(2 * 8 * 0.40), r.text
    body = {
        "node_id": image["id"],
        "prompt": "a kite",
        "aspect_ratio": "1:1",
        "number_of_images": 3,
    }
    r = await web.post("/api/ai/estimate-image", json=body, headers=alice.headers)
    assert r.status_code == 200 and r.json()["cost"] == pytest.approx(3 * 0.039), r.text
    # an estimate spends nothing
    assert (await usage(web, alice))["reserved"] == 0.0
    # once one clip is reserved, the estimate says so
    assert (await generate(web, alice, video["id"])).status_code == 202
    r = await web.post("/api/ai/estimate", json=video_body(image["id"]), headers=alice.headers)
    assert_error(r, 422, "not_a_video_node")
    other = await make_node(web, alice, pid, "video")
    r = await web.post("/api/ai/estimate", json=video_body(other["id"]), headers=alice.headers)
    assert r.json()["budget_remaining"] == pytest.approx(BUDGET - CLIP_COST)


@pytest.mark.parametrize(
    "overrides",
    [
        {"resolution": "1080p", "duration": 4},  # Veo 3.1 makes 1080p only at 8 s
        {"duration": 5},
        {"prompt": "   "},
        {"image_url": "https://example.com/cat.png"},
        {"number_of_videos": 9},
    ],
)
async def test_an_impossible_estimate_is_refused_like_generate(
    web: httpx.AsyncClient, store: Store, overrides: dict[str, Any]
) -> None:
    """What generate refuses with a 422, estimate refuses with the same status and code."""
    alice = await sign_up(web)
    [node] = await video_nodes(web, alice, 1)
    body = video_body(node, **overrides)
    estimate = await web.post("/api/ai/estimate", json=body, headers=alice.headers)
    submit = await web.post("/api/ai/generate-video", json=body, headers=alice.headers)
    assert submit.status_code == 422, submit.text
    assert estimate.status_code == 422, estimate.text
    assert estimate.json()["error"]["code"] == submit.json()["error"]["code"]
    assert await store.db.fetch_val("SELECT count(*) FROM jobs") == 0


async def test_money_routes_need_a_session_and_an_editor(
    web: httpx.AsyncClient, store: Store
) -> None:
    """Without a session: 401; a viewer of a shared project may not estimate or spend in it."""
    body = video_body(str(uuid.uuid4()))
    assert_error(await web.get("/api/me/usage"), 401, "unauthenticated")
    assert_error(await web.post("/api/ai/estimate", json=body), 401, "unauthenticated")
    assert_error(await web.post("/api/ai/estimate-image", json=body), 401, "unauthenticated")
    owner, viewer = await sign_up(web), await sign_up(web)
    [node] = await video_nodes(web, owner, 1)
    pid = (await web.get(f"/api/nodes/{node}", headers=owner.headers)).json()["project_id"]
    r = await web.post(
        f"/api/projects/{pid}/members",
        json={"email": viewer.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    for path in ("/api/ai/estimate", "/api/ai/generate-video"):
        r = await web.post(path, json=video_body(node), headers=viewer.headers)
        assert_error(r, 403, "forbidden_role")
    assert (await usage(web, viewer))["reserved"] == 0.0


async def test_usage_is_unlimited_without_a_budget(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Without CANVASFLOW_BUDGET: nothing remaining to count, spending is still shown."""
    mine = await usage(client, alice)
    assert (mine["budget"], mine["remaining"], mine["spent"], mine["reserved"]) == (
        None,
        None,
        0.0,
        0.0,
    )
    assert mine["period"] == "month" and mine["period_start"].startswith(time.strftime("%Y-%m"))
