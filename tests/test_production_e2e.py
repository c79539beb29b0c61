"""The production edges end to end: web + arq worker with Veo and GCS, both fakes on loopback.

The web process and the workers run the real google-genai and
google-cloud-storage clients, configured only through settings and the
environment an operator would set; Postgres and Redis are real.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.config import Settings
from db.changes import Store
from tests.fakes.gcs import FakeGcs
from tests.fakes.veo import API_KEY, VIDEO, FakeVeo, VeoScript
from tests.support.accounts import sign_up
from tests.support.api import make_node, make_project
from tests.support.servers import AppThread, ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import (
    WorkerHarness,
    image_bytes,
    job_row,
    submit_job,
    upload_image,
    video_body,
    wait_for_job,
    worker_process,
)

BUCKET = "canvasflow-prod"


@pytest.fixture(scope="module")
def fakes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FakeVeo, FakeGcs, dict[str, str]]]:
    """Both fakes on loopback, and the environment that points the SDKs at them."""
    veo, gcs = FakeVeo(), FakeGcs()
    with AppThread(veo.app) as veo_server, AppThread(gcs.app) as gcs_server:
        key_file = gcs.service_account_file(tmp_path_factory.mktemp("sa"), gcs_server.url)
        env = {
            "GEMINI_API_KEY": API_KEY,
            "CANVASFLOW_VEO_BASE_URL": veo_server.url,
            "CANVASFLOW_VEO_POLL_INTERVAL_S": "0.1",
            "GCS_BUCKET": BUCKET,
            "STORAGE_EMULATOR_HOST": gcs_server.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        }
        yield veo, gcs, env


@pytest.fixture
def veo(fakes: tuple[FakeVeo, FakeGcs, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> FakeVeo:
    """The Veo fake, reset; this process's environment points google-cloud-storage at the GCS fake."""
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.setenv(name, fakes[2][name])
    fakes[0].reset()
    return fakes[0]


@pytest.fixture
def gcs(fakes: tuple[FakeVeo, FakeGcs, dict[str, str]]) -> FakeGcs:
    """The GCS fake."""
    return fakes[1]


def production_settings(
    services: Services, fakes: tuple[Any, Any, dict[str, str]], **overrides: Any
) -> Settings:
    """Settings of a process configured for Veo and GCS, as the env of `fakes` says."""
    env = fakes[2]
    values: dict[str, Any] = {
        "gemini_api_key": API_KEY,
        "veo_base_url": env["CANVASFLOW_VEO_BASE_URL"],
        "veo_poll_interval_s": 0.05,
        "gcs_bucket": BUCKET,
    }
    values.update(overrides)
    return settings_for(services, **values)


WebFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def start_web(
    services: Services, fakes: tuple[FakeVeo, FakeGcs, dict[str, str]], veo: FakeVeo
) -> AsyncIterator[WebFactory]:
    """Start canvasflow web processes configured for Veo and GCS; returns clients of them."""
    servers: list[ServerThread] = []
    clients: list[httpx.AsyncClient] = []

    async def start(**overrides: Any) -> httpx.AsyncClient:
        port = free_port()
        settings = production_settings(
            services,
            fakes,
            public_url=f"http://127.0.0.1:{port}",
            allowed_origins=(f"http://127.0.0.1:{port}",),
            **overrides,
        )
        server = ServerThread(settings, port)
        server.start()
        servers.append(server)
        client = httpx.AsyncClient(base_url=server.base_url, timeout=10)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        server.stop()


async def test_image_to_video_completes_through_veo_and_gcs(
    start_web: WebFactory, veo: FakeVeo, gcs: FakeGcs, fakes: Any, services: Services
) -> None:
    """Upload → submit → a real worker process → completed; the signed URL serves the bytes Veo made."""
    veo.script = VeoScript(polls_until_done=2)
    client = await start_web()
    who = await sign_up(client)
    pid = await make_project(client, who)
    picture = image_bytes("JPEG")
    upload = (await upload_image(client, who, pid, picture)).json()
    node = await make_node(client, who, pid, "video")
    body = video_body(node["id"], image_url=upload["key"], generate_audio=True, duration=8)
    r = await client.post("/api/ai/generate-video", json=body, headers=who.headers)
    assert r.status_code == 202, r.text
    worker = worker_process(services, **fakes[2]).start()
    try:
        started = time.monotonic()
        done = await wait_for_job(client, who, r.json()["job_id"], timeout_s=60)
        elapsed = time.monotonic() - started
    finally:
        worker.kill()
    assert done["status"] == "completed", (done, worker.log()[-3000:])
    print(f"submit → completed through Veo and GCS fakes: {elapsed:.2f} s")
    key = f"videos/{pid}/{done['job_id']}.mp4"
    assert done["result"]["video_key"] == key
    assert done["result"]["video_url"].startswith(
        f"{fakes[2]['STORAGE_EMULATOR_HOST']}/{BUCKET}/{key}?X-Goog-"
    )
    async with httpx.AsyncClient() as http:
        served = await http.get(done["result"]["video_url"])
    assert (served.status_code, served.content) == (200, VIDEO)
    assert served.headers["content-type"] == "video/mp4"
    assert gcs.objects[(BUCKET, key)].content_type == "video/mp4"
    # the worker read the image from the bucket by key and sent exactly those bytes to Veo
    [sent] = veo.submits()
    assert sent.body["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(picture).decode(),
        "mimeType": "image/jpeg",
    }
    assert sent.body["parameters"]["generateAudio"] is True
    assert veo.generations_started == 1


@pytest.mark.timeout(120)
async def test_killed_worker_resumes_the_same_operation(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """SIGKILL a worker mid-poll: the restarted worker polls the saved operation; Veo generated once."""
    veo.script = VeoScript(outcome="never")
    client = await start_web()
    who = await sign_up(client)
    job = await submit_job(client, who)
    first = worker_process(services, **fakes[2]).start()
    second = worker_process(services, **fakes[2])
    try:
        deadline = time.monotonic() + 60
        while len(veo.polls()) < 3:
            assert first.alive and time.monotonic() < deadline, first.log()[-3000:]
            await asyncio.sleep(0.05)
        first.kill()
        row = await job_row(store, job["job_id"])
        operation = row["provider_operation"]
        assert (row["status"], row["attempts"]) == ("processing", 1)
        assert operation is not None and veo.operations[operation] >= 3
        # Veo finishes two polls from now, whoever asks
        veo.script.polls_until_done = veo.operations[operation] + 2
        veo.script.outcome = "video"
        second.start()
        done = await wait_for_job(client, who, job["job_id"], timeout_s=60)
    finally:
        first.kill()
        second.kill()
    assert done["status"] == "completed", (done, second.log()[-3000:])
    assert veo.generations_started == 1
    assert {p.body["operationName"] for p in veo.polls()} == {operation}
    assert (await job_row(store, job["job_id"]))["attempts"] == 2


async def run_one(
    start_web: WebFactory,
    services: Services,
    fakes: Any,
    store: Store,
    script: VeoScript,
    **settings: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit a job, run it with an in-process arq worker; returns the finished job and its node."""
    client = await start_web()
    who = await sign_up(client)
    job = await submit_job(client, who)
    fakes[0].script = script
    if "deadline_s" in settings:
        await store.db.execute(
            f"UPDATE jobs SET deadline = created_at + interval '{settings.pop('deadline_s')} seconds' WHERE id = :id",
            {"id": uuid.UUID(job["job_id"])},
        )
    async with WorkerHarness(production_settings(services, fakes, **settings)) as harness:
        await harness.drain()
    done = await wait_for_job(client, who, job["job_id"])
    node = (await client.get(f"/api/nodes/{job['node_id']}", headers=who.headers)).json()
    return done, node


async def test_safety_block_fails_the_job_with_the_reason(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """A result blocked by Veo's safety filters fails the job (and node) with the reason Veo gave."""
    script = VeoScript(outcome="safety", safety_reasons=["This prompt names a public figure."])
    done, node = await run_one(start_web, services, fakes, store, script)
    message = "blocked by the provider's safety filters: This prompt names a public figure."
    assert (done["status"], done["error"]) == ("failed", message)
    assert (node["status"], node["error_message"]) == ("failed", message)
    assert veo.generations_started == 1


async def test_quota_then_success_completes(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """A 429 at submit is retried with backoff; the second attempt generates and completes."""
    done, _ = await run_one(start_web, services, fakes, store, VeoScript(submit_statuses=[429]))
    assert (done["status"], done["error"]) == ("completed", None)
    assert len(veo.submits()) == 2 and veo.generations_started == 1
    assert (await job_row(store, done["job_id"]))["attempts"] == 2


async def test_quota_every_time_gives_up(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """429 on every try fails the job after CANVASFLOW_JOB_MAX_TRIES with the API's words."""
    script = VeoScript(submit_statuses=[429] * 5)
    done, _ = await run_one(start_web, services, fakes, store, script, job_max_tries=2)
    assert done["status"] == "failed"
    assert done["error"] == (
        "generation failed: submit: 429 RESOURCE_EXHAUSTED scripted submit error (gave up after 2 attempts)"
    )
    assert veo.generations_started == 0


async def test_operation_error_fails_with_its_message(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """An operation that finishes with an error fails the job with that error's message, untried again."""
    script = VeoScript(outcome="error", error={"code": 3, "message": "The input image is corrupt."})
    done, node = await run_one(start_web, services, fakes, store, script)
    assert (done["status"], done["error"]) == (
        "failed",
        "generation failed: The input image is corrupt.",
    )
    assert node["status"] == "failed"
    assert veo.generations_started == 1 and len(veo.submits()) == 1


async def test_never_done_times_out_at_the_deadline(
    start_web: WebFactory, veo: FakeVeo, fakes: Any, services: Services, store: Store
) -> None:
    """An operation that never finishes is polled (with backoff) until the job's deadline, then fails."""
    started = time.monotonic()
    done, node = await run_one(
        start_web, services, fakes, store, VeoScript(outcome="never"), deadline_s=2
    )
    assert (done["status"], done["error"]) == ("failed", "timed out after 2 s")
    assert node["error_message"] == "timed out after 2 s"
    polls = len(veo.polls())
    # 0.05 s growing 1.5x per poll: about 8 polls fit in 2 s, far fewer than at a fixed 0.05 s
    assert 4 <= polls <= 12, polls
    assert time.monotonic() - started < 15


async def test_capability_refusals_are_422_before_any_job(
    start_web: WebFactory, veo: FakeVeo, store: Store
) -> None:
    """Combinations the configured model cannot make are 422 with a code naming why; no job, no Veo call."""
    veo2 = await start_web(veo_model="veo-2.0-generate-001")
    veo31 = await start_web()
    who = await sign_up(veo31)
    pid = await make_project(veo31, who)
    node = await make_node(veo31, who, pid, "video")
    webp = (await upload_image(veo31, who, pid, image_bytes("WEBP"), filename="p.webp")).json()
    cases: list[tuple[httpx.AsyncClient, dict[str, Any], str]] = [
        (veo2, {"resolution": "1080p", "duration": 6}, "unsupported_resolution"),
        (veo2, {"duration": 4}, "unsupported_duration"),
        (veo2, {"duration": 8, "generate_audio": True}, "unsupported_audio"),
        (veo31, {"image_url": webp["key"]}, "unsupported_image_type"),
        (veo31, {"resolution": "1080p", "duration": 4}, "resolution_needs_8s"),
    ]
    for client, changes, code in cases:
        r = await client.post(
            "/api/ai/generate-video", json=video_body(node["id"], **changes), headers=who.headers
        )
        assert r.status_code == 422, (changes, r.text)
        assert r.json()["error"]["code"] == code, r.text
    assert await store.db.fetch_val("SELECT count(*) FROM jobs") == 0
    assert veo.requests == []
    # what Veo 3.1 makes: 1080p at 8 s, with audio, four variants
    r = await veo31.post(
        "/api/ai/generate-video",
        json=video_body(
            node["id"], generate_audio=True, resolution="1080p", duration=8, number_of_videos=4
        ),
        headers=who.headers,
    )
    assert r.status_code == 202, r.text


def test_local_renderer_without_veo_variables(tmp_path: Path) -> None:
    """Without GEMINI_API_KEY or CANVASFLOW_VEO_PROJECT the provider stays the local renderer."""
    from tasks.providers.auto import make_provider
    from tasks.providers.local import LocalRenderer

    assert isinstance(make_provider(Settings(data_dir=tmp_path)), LocalRenderer)
