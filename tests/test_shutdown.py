"""Graceful shutdown of real processes: SIGTERM to a web process and to a worker mid-job."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from common import protocol
from common.protocol import CloseCode
from db.changes import Store
from tests.support.accounts import Account, sign_up
from tests.support.api import make_node, make_project
from tests.support.procs import WebProc
from tests.support.services import Services
from tests.support.workers import image_bytes, video_body, wait_for_job, worker_process
from tests.support.ws import WsClient

#: how long a stopping process may take: uvicorn's 10 s for in-flight requests, plus slack
EXIT_BOUND_S = 15.0


@pytest.mark.timeout(60)
async def test_web_sigterm_finishes_an_inflight_upload_and_closes_websockets_1001(
    services: Services, store: Store
) -> None:
    """SIGTERM mid-upload: websockets get 1001 at once, the upload still completes (201), then the process exits."""
    web = WebProc(services).start()
    try:
        await asyncio.to_thread(web.wait_ready)
        async with httpx.AsyncClient(base_url=web.base_url, timeout=30) as http:
            account = await sign_up(http)
            pid = await make_project(http, account)
            clients = [await WsClient.open(web.base_url, account.token) for _ in range(2)]
            for c in clients:
                await c.subscribe(pid)
                await c.expect(protocol.Snapshot)
            # a multipart body we send in slices: half now, the rest after the SIGTERM
            prepared = http.build_request(
                "POST", "/", files={"file": ("p.png", image_bytes(), "image/png")}
            )
            body = prepared.read()
            half = len(body) // 2
            started, resume = asyncio.Event(), asyncio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield body[:half]
                started.set()
                await resume.wait()
                step = max(1, (len(body) - half) // 8)
                for at in range(half, len(body), step):
                    await asyncio.sleep(0.1)
                    yield body[at : at + step]

            headers = {
                **account.headers,
                "content-type": prepared.headers["content-type"],
                "content-length": str(len(body)),
            }
            upload = asyncio.create_task(
                http.post(f"/api/projects/{pid}/uploads", content=slow_body(), headers=headers)
            )
            await started.wait()
            # until the handler is reading the body: in flight besides our /metrics request
            while True:
                page = (await http.get("/metrics")).text
                match = re.search(r"^canvasflow_http_requests_in_flight (\S+)$", page, re.M)
                if match and float(match.group(1)) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert web.popen is not None
            sigterm_at = time.monotonic()
            web.popen.send_signal(signal.SIGTERM)
            codes = [await c.close_code() for c in clients]
            closed_after_s = time.monotonic() - sigterm_at
            assert codes == [CloseCode.GOING_AWAY] * 2, web.log()[-2000:]
            # the request began before the signal: it is served to the end
            resume.set()
            response = await upload
            assert response.status_code == 201, (response.text, web.log()[-2000:])
            code = await asyncio.to_thread(web.popen.wait, EXIT_BOUND_S)
            exited_after_s = time.monotonic() - sigterm_at
        print(
            f"websockets closed {closed_after_s:.2f} s, exit {exited_after_s:.2f} s after SIGTERM"
        )
        assert code in (0, -signal.SIGTERM), web.log()[-2000:]
        assert closed_after_s < 2.0
        key = response.json()["key"]
        row = await store.db.fetch_one("SELECT size_bytes FROM uploads WHERE key = :k", {"k": key})
        assert row is not None and row["size_bytes"] == len(image_bytes())
        assert (services.data_dir / "media" / key).read_bytes() == image_bytes()
    finally:
        web.stop()


@pytest.mark.timeout(90)
async def test_worker_sigterm_mid_job_hands_it_to_another_worker(
    client: httpx.AsyncClient, alice: Account, services: Services, store: Store
) -> None:
    """SIGTERM a worker mid-render: it exits promptly, the job goes back to the queue and another worker completes it once."""
    workers = [worker_process(services, CANVASFLOW_LOG_LEVEL="info").start() for _ in range(2)]
    try:
        pid = await make_project(client, alice)
        node = await make_node(client, alice, pid, "video")
        r = await client.post(
            "/api/ai/generate-video", json=video_body(node["id"], duration=8), headers=alice.headers
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 60
        while (await _job(store, job_id))["progress"] == 0:
            assert time.monotonic() < deadline, [w.log()[-2000:] for w in workers]
            await asyncio.sleep(0.05)
        running = [w for w in workers if f"job {job_id}: submitted" in w.log()]
        assert len(running) == 1
        first = running[0]
        other = workers[1 - workers.index(first)]
        sigterm_at = time.monotonic()
        assert first.popen is not None
        first.popen.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.popen.wait, EXIT_BOUND_S)
        exited_after_s = time.monotonic() - sigterm_at
        done = await wait_for_job(client, alice, job_id, timeout_s=60)
        handed_over_s = time.monotonic() - sigterm_at
        print(f"worker exited {exited_after_s:.2f} s after SIGTERM; job done {handed_over_s:.2f} s")
        assert code == 0, first.log()[-2000:]
        assert done["status"] == "completed", other.log()[-3000:]
        # arq handed it back (no lease to wait out) and the other worker took it over
        assert "cancelled, will be run again" in first.log()
        assert f"job {job_id}: taking over after attempt 1" in other.log()
        assert "job.completed" not in first.log()
    finally:
        for w in workers:
            w.stop()
    row = await _job(store, job_id)
    assert (row["status"], row["attempts"]) == ("completed", 2)
    kinds = await store.db.fetch_all(
        "SELECT kind FROM events WHERE project_id = :p AND kind LIKE 'job.%' ORDER BY seq",
        {"p": uuid.UUID(pid)},
    )
    assert [k["kind"] for k in kinds] == [
        "job.created",
        "job.started",
        "job.started",
        "job.completed",
    ]
    live = await store.db.fetch_val(
        "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')"
    )
    assert live == 0


async def _job(store: Store, job_id: str) -> dict[str, object]:
    row = await store.db.fetch_one("SELECT * FROM jobs WHERE id = :id", {"id": uuid.UUID(job_id)})
    assert row is not None
    return dict(row._mapping)
