"""Metrics move where things happen (web and worker), and logs never carry secrets."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import httpx
import pytest
from redis.asyncio import Redis

from common import protocol
from common.keys import queue_name
from db.changes import Store
from tests.support.accounts import Account, sign_up
from tests.support.api import make_node, make_project
from tests.support.metrics import scrape, value
from tests.support.procs import WebProc, WorkerProc
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port
from tests.support.workers import video_body, wait_for_job
from tests.support.ws import Model, WsClient, add_node, follow


async def commit_unpublished(store: Store, project_id: UUID, x: float) -> int:
    """A change committed and logged whose publish fails (Redis unreachable); returns its seq."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        event = await add_node(
            Store(db=store.db, redis=dead, namespace=store.namespace), project_id, x
        )
    finally:
        await dead.aclose()
    return event.seq


@pytest.mark.timeout(90)
async def test_a_real_flow_moves_web_and_worker_metrics(
    server: ServerThread,
    client: httpx.AsyncClient,
    services: Services,
    store: Store,
    alice: Account,
) -> None:
    """Subscribe, change, lose a publish, run a job through a real worker: every family moves."""
    web_url = f"{server.base_url}/metrics"
    before = await scrape(web_url)
    pid = await make_project(client, alice)
    ws = await WsClient.open(server.base_url, alice.token)
    await ws.subscribe(pid)
    model = Model()
    model.apply(await ws.expect(protocol.Snapshot))
    live = await scrape(web_url)
    # gauges of this process: at least our socket and subscription are counted
    assert value(live, "canvasflow_ws_connections") >= 1
    assert value(live, "canvasflow_ws_subscriptions") >= 1
    assert value(live, "canvasflow_ws_channels") >= 1
    # 20 pings: the send-queue depth is sampled every 16th frame of a connection
    for _ in range(20):
        await ws.send({"type": "ping"})
        await ws.expect(protocol.Pong)

    # a lost publish whose event is in the log: the hub fills it from Postgres
    project_id = UUID(pid)
    await commit_unpublished(store, project_id, 1)
    await add_node(store, project_id, 2)
    await follow(ws, model, 2)
    # a lost publish whose event is NOT in the log: the subscriber is told to resync
    lost = await commit_unpublished(store, project_id, 3)
    await store.db.execute(
        "DELETE FROM events WHERE project_id = :p AND seq = :s", {"p": project_id, "s": lost}
    )
    await add_node(store, project_id, 4)
    resynced = await ws.expect(protocol.Snapshot)
    model.apply(resynced)
    assert resynced.seq == lost + 1

    # a job: submitted over REST, lost by the queue, re-enqueued by the worker's sweeper, run
    node = await make_node(client, alice, pid, "video")
    r = await client.post(
        "/api/ai/generate-video", json=video_body(node["id"]), headers=alice.headers
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    await store.redis.delete(f"arq:job:{job_id}")
    assert await store.redis.zrem(queue_name(services.namespace), job_id) == 1
    port = free_port()
    worker = WorkerProc(
        services, CANVASFLOW_WORKER_METRICS_PORT=str(port), CANVASFLOW_LOG_LEVEL="info"
    ).start()
    try:
        done = await wait_for_job(client, alice, job_id, timeout_s=60)
        assert done["status"] == "completed", worker.log()[-3000:]
        seq = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": project_id})
        await follow(ws, model, int(seq))
        worker_metrics = await scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        worker.stop()
    await ws.close()
    after = await scrape(web_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # web: HTTP by route template and status, with a latency observation per request
    submit = {"route": "/api/ai/generate-video", "method": "POST"}
    assert moved("canvasflow_http_requests_total", status="202", **submit) == 1
    assert moved("canvasflow_http_request_duration_seconds_count", **submit) == 1
    assert moved("canvasflow_http_requests_total", route="/api/projects/{project_id}/nodes",
                 method="POST", status="201") == 1  # fmt: skip
    # web: events published after commit (the two lost ones were not), delivered, repaired
    assert moved("canvasflow_events_published_total", kind="node.created") >= 3
    assert moved("canvasflow_events_published_total", kind="job.created") == 1
    assert moved("canvasflow_ws_frames_delivered_total", type="snapshot") >= 2
    assert moved("canvasflow_ws_frames_delivered_total", type="event") >= 5
    assert moved("canvasflow_ws_gap_fills_total") >= 1
    assert moved("canvasflow_ws_resyncs_total", reason="log_gap") >= 1
    assert moved("canvasflow_ws_send_queue_depth_count") >= 1
    assert moved("canvasflow_jobs_total", type="video", status="pending") == 1
    # the worker's own page: its job transitions, duration, sweeper action and queue depth
    w = worker_metrics
    assert value(w, "canvasflow_jobs_total", type="video", status="processing") == 1
    assert value(w, "canvasflow_jobs_total", type="video", status="completed") == 1
    assert value(w, "canvasflow_job_duration_seconds_count", type="video", status="completed") == 1
    assert value(w, "canvasflow_sweeper_actions_total", action="enqueued") == 1
    assert ("canvasflow_queue_depth", frozenset()) in w
    assert value(w, "canvasflow_events_published_total", kind="job.started") == 1
    assert value(w, "canvasflow_events_published_total", kind="job.completed") == 1
    # the websocket saw the same story, in order
    assert model.gaps == [] and model.seq == int(seq)


@pytest.mark.timeout(60)
async def test_logs_never_carry_passwords_or_tokens(services: Services) -> None:
    """A web process logging at debug through signup, logins, bearer calls, a websocket and logout writes no secret."""
    web = WebProc(services)
    web.env["CANVASFLOW_LOG_LEVEL"] = "debug"
    web.start()
    password = "hunter2-correct-horse-battery"
    wrong = "not-the-password-4711"
    try:
        await asyncio.to_thread(web.wait_ready)
        async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as http:
            account = await sign_up(http, f"secret{time.time_ns()}@example.com")
            # sign_up uses its own password; log in with a new account of ours too
            r = await http.post(
                "/api/auth/signup", json={"email": "logs@example.com", "password": password}
            )
            assert r.status_code == 201
            token = r.json()["token"]
            http.cookies.clear()
            r = await http.post(
                "/api/auth/login", json={"email": "logs@example.com", "password": wrong}
            )
            assert r.status_code == 401
            r = await http.post(
                "/api/auth/login", json={"email": "logs@example.com", "password": password}
            )
            assert r.status_code == 200
            login_token = r.json()["token"]
            http.cookies.clear()
            for t in (token, login_token, account.token):
                r = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {t}"})
                assert r.status_code == 200
            ws = await WsClient.open(web.base_url, token)
            await ws.send({"type": "ping"})
            await ws.expect(protocol.Pong)
            await ws.close()
            # a cookie request too: the cookie header carries the token
            r = await http.get("/api/auth/me", headers={"Cookie": f"cf_session={login_token}"})
            assert r.status_code == 200
            r = await http.post(
                "/api/auth/logout", headers={"Authorization": f"Bearer {login_token}"}
            )
            assert r.status_code == 204
    finally:
        web.stop()
    text = web.log()
    # the capture is real: the debug-level process logged these requests
    assert '"route":"/api/auth/login"' in text and '"status":401' in text
    for secret in (password, wrong, token, login_token, account.token, "correct horse",
                   "test-secret"):  # fmt: skip
        assert secret not in text, f"{secret!r} appears in the log"
