"""Generation jobs over REST with a real arq worker: submit, run, read, cancel, refuse."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import msgspec
import pytest
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus as ArqStatus

from common.keys import project_channel, queue_name
from common.protocol.events import decode_bus
from db.changes import Store
from tasks.queue import enqueue_job
from tasks.video import generate_video
from tests.support.accounts import Account
from tests.support.api import assert_error, dump, make_node, make_project
from tests.support.services import Services, settings_for
from tests.support.workers import (
    WorkerHarness,
    image_bytes,
    running_worker,
    upload_image,
    video_body,
    wait_for_job,
)

Canvas = dict[str, str]


@pytest.fixture
async def canvas(client: httpx.AsyncClient, alice: Account) -> Canvas:
    """Alice's project with a video node, an image node and a prompt node."""
    pid = await make_project(client, alice)
    video = await make_node(client, alice, pid, "video")
    image = await make_node(client, alice, pid, "image")
    prompt = await make_node(client, alice, pid, "prompt", data={"prompt": "x"})
    return {"project": pid, "video": video["id"], "image": image["id"], "prompt": prompt["id"]}


@pytest.fixture
async def trap() -> AsyncIterator[tuple[list[bytes], int]]:
    """A loopback listener that records any connection: proof that a URL was (not) fetched."""
    fetched: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fetched.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield fetched, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def submit(
    client: httpx.AsyncClient, who: Account, node_id: str, **overrides: Any
) -> dict[str, Any]:
    """POST generate-video and expect 202; returns the job."""
    r = await client.post(
        "/api/ai/generate-video", json=video_body(node_id, **overrides), headers=who.headers
    )
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


async def event_kinds(store: Store, project_id: str) -> list[str]:
    """Kinds of the project's logged events, in seq order."""
    rows = await store.db.fetch_all(
        "SELECT kind FROM events WHERE project_id = :p ORDER BY seq", {"p": uuid.UUID(project_id)}
    )
    return [r["kind"] for r in rows]


@pytest.mark.timeout(90)
async def test_generate_video_end_to_end(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """Submit → a real arq worker → a playable H.264 MP4 at the signed URL, with seq'd events and progress."""
    pubsub = store.redis.pubsub()
    await pubsub.subscribe(project_channel(services.namespace, canvas["project"]))
    confirmed = await pubsub.get_message(timeout=2)
    assert confirmed is not None and confirmed["type"] == "subscribe"
    started = time.perf_counter()
    job = await submit(client, alice, canvas["video"], duration=8, negative_prompt="rain")
    assert job["status"] == "pending" and job["node_id"] == canvas["video"]
    assert job["type"] == "video" and job["progress"] == 0 and job["result"] is None
    node = (await client.get(f"/api/nodes/{canvas['video']}", headers=alice.headers)).json()
    assert node["status"] == "processing"

    async with WorkerHarness(settings_for(services)) as harness:
        worker = await harness.drain()
    elapsed = time.perf_counter() - started
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    print(f"submit → completed (8 s 720p): {elapsed:.2f} s")

    job = await wait_for_job(client, alice, job["job_id"])
    assert job["status"] == "completed", job
    assert job["progress"] == 1 and job["error"] is None
    result = job["result"]
    key = f"videos/{canvas['project']}/{job['job_id']}.mp4"
    assert result["video_key"] == key
    assert result["mime_type"] == "video/mp4"
    assert (result["duration"], result["resolution"], result["aspect_ratio"]) == (8, "720p", "16:9")
    node = (await client.get(f"/api/nodes/{canvas['video']}", headers=alice.headers)).json()
    assert node["status"] == "completed" and node["error_message"] is None
    assert node["data"]["video_key"] == key

    stored = (services.data_dir / "media" / key).read_bytes()
    r = await client.get(result["video_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content == stored
    with av.open(io.BytesIO(r.content), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (1280, 720)
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(8, abs=0.05)
        assert sum(1 for _ in container.decode(stream)) == 8 * 24
    r = await client.get(node["data"]["video_url"], headers={"Range": "bytes=0-1023"})
    assert r.status_code == 206 and r.content == stored[:1024]

    assert await event_kinds(store, canvas["project"]) == [
        "node.created",
        "node.created",
        "node.created",
        "job.created",
        "job.started",
        "job.completed",
    ]
    # what the hubs heard: the three job changes with consecutive seqs, and progress ticks
    heard: list[Any] = []
    while (
        msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
    ) is not None:
        heard.append(decode_bus(msg["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    events = [e for e in heard if hasattr(e, "seq")]
    assert [(e.kind, e.seq) for e in events] == [
        ("job.created", 4),
        ("job.started", 5),
        ("job.completed", 6),
    ]
    completed = msgspec.to_builtins(events[-1].data)
    assert completed["job"]["status"] == "completed" and completed["node"]["status"] == "completed"
    # a running job's ticks (the queue ticker's, of the pending job, carry its queue position)
    ticks = [e.progress for e in heard if not hasattr(e, "seq") and e.queue_position is None]
    assert ticks and ticks == sorted(ticks) and all(0 <= p < 1 for p in ticks)
    # at most about one tick a second
    assert len(ticks) <= elapsed + 1


async def test_arq_job_id_is_the_postgres_job_id(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """The queued arq job has the row's id as its id and as its only argument."""
    job = await submit(client, alice, canvas["video"])
    job_id = job["job_id"]
    row = await store.db.fetch_one(
        "SELECT id, status FROM jobs WHERE id = :id", {"id": uuid.UUID(job_id)}
    )
    assert row is not None and row["status"] == "pending"
    assert await store.redis.exists(job_key_prefix + job_id)
    queued = await store.redis.zrange(queue_name(services.namespace), 0, -1)
    assert queued == [job_id.encode()]
    async with WorkerHarness(settings_for(services)) as harness:
        assert harness.queue is not None
        (definition,) = await harness.queue.queued_jobs(queue_name=queue_name(services.namespace))
        assert definition.job_id == job_id
        assert definition.function == "generate_video"
        assert definition.args == (job_id,) and definition.kwargs == {}


async def test_same_job_enqueued_twice_runs_once(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """A second enqueue of the same id is refused by arq, and a late redelivery of a finished job runs nothing."""
    job = await submit(client, alice, canvas["video"])
    job_id = uuid.UUID(job["job_id"])
    async with WorkerHarness(settings_for(services)) as harness:
        assert harness.queue is not None
        assert await enqueue_job(harness.queue, services.namespace, "video", job_id) is False
        worker = await harness.drain()
        assert worker.jobs_complete == 1
        assert harness.renderer.submitted == 1
        # even after arq forgot the result, a redelivery finds the row finished
        await store.redis.delete(result_key_prefix + str(job_id))
        assert await enqueue_job(harness.queue, services.namespace, "video", job_id) is True
        await harness.drain()
        assert harness.renderer.submitted == 1
    row = await store.db.fetch_one(
        "SELECT status, attempts FROM jobs WHERE id = :id", {"id": job_id}
    )
    assert row is not None and (row["status"], row["attempts"]) == ("completed", 1)
    kinds = await event_kinds(store, canvas["project"])
    assert kinds.count("job.started") == 1 and kinds.count("job.completed") == 1


async def test_competing_workers_run_a_job_once(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """Three workers polling one queue: exactly one of them runs the job."""
    job = await submit(client, alice, canvas["video"])
    async with WorkerHarness(settings_for(services)) as harness:
        workers = [harness.worker(burst=True) for _ in range(3)]
        await asyncio.gather(*(w.async_run() for w in workers))
        assert sum(w.jobs_complete for w in workers) == 1
        assert harness.renderer.submitted == 1
    done = await wait_for_job(client, alice, job["job_id"])
    assert done["status"] == "completed"
    kinds = await event_kinds(store, canvas["project"])
    assert kinds.count("job.started") == 1


@pytest.mark.timeout(90)
async def test_duplicate_delivery_while_processing_runs_nothing(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """A first delivery (job_try 1) of a job another run is processing runs nothing and claims nothing."""
    job = await submit(client, alice, canvas["video"], duration=8)
    async with running_worker(settings_for(services)) as harness:
        await wait_for_job(client, alice, job["job_id"], ("processing",))
        outcome = await generate_video(
            {**harness.ctx, "job_try": 1, "job_id": job["job_id"]}, job["job_id"]
        )
        assert outcome == "nothing to do"
        done = await wait_for_job(client, alice, job["job_id"])
        assert done["status"] == "completed"
        await harness.stop()
        # one claim, one render: the duplicate neither bumped the attempt nor submitted
        assert harness.renderer.submitted == 1
    row = await store.db.fetch_one(
        "SELECT attempts FROM jobs WHERE id = :id", {"id": uuid.UUID(job["job_id"])}
    )
    assert row is not None and row["attempts"] == 1
    kinds = await event_kinds(store, canvas["project"])
    assert kinds.count("job.started") == 1 and kinds.count("job.completed") == 1


async def test_submit_with_uploaded_image(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """image_url as the upload's key or its signed URL is stored as the key; the worker renders from it."""
    upload = (
        await upload_image(client, alice, canvas["project"], image_bytes(color=(0, 200, 0)))
    ).json()
    job = await submit(client, alice, canvas["video"], image_url=upload["url"])
    params = await store.db.fetch_val(
        "SELECT params FROM jobs WHERE id = :id", {"id": uuid.UUID(job["job_id"])}
    )
    assert params["image_key"] == upload["key"] and params["image_mime_type"] == "image/png"
    assert "image_url" not in params
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
    done = await wait_for_job(client, alice, job["job_id"])
    assert done["status"] == "completed", done
    video = (services.data_dir / "media" / done["result"]["video_key"]).read_bytes()
    with av.open(io.BytesIO(video), mode="r") as container:
        frame = next(container.decode(video=0)).to_image()  # type: ignore[no-untyped-call]
    r, g, b = frame.crop((100, 100, 300, 200)).resize((1, 1)).getpixel((0, 0))
    assert g > 150 and r < 60 and b < 60
    # the key itself works as well
    again = await submit(client, alice, canvas["video"], image_url=upload["key"])
    assert again["status"] == "pending"


async def test_double_submit_is_409_with_live_job(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, store: Store
) -> None:
    """While a node has a live job, submits are 409 job_in_progress naming it, even when racing."""
    first = await submit(client, alice, canvas["video"])
    r = await client.post(
        "/api/ai/generate-video", json=video_body(canvas["video"]), headers=alice.headers
    )
    assert_error(r, 409, "job_in_progress")
    assert r.json()["error"]["job_id"] == first["job_id"]
    # a fresh node, many concurrent submits: exactly one wins
    other = (await make_node(client, alice, canvas["project"], "video"))["id"]
    answers = await asyncio.gather(
        *(
            client.post("/api/ai/generate-video", json=video_body(other), headers=alice.headers)
            for _ in range(8)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] + [409] * 7
    winner = next(a.json()["job_id"] for a in answers if a.status_code == 202)
    assert {a.json()["error"]["job_id"] for a in answers if a.status_code == 409} == {winner}
    live = await store.db.fetch_val(
        "SELECT count(*) FROM jobs WHERE node_id = :n", {"n": uuid.UUID(other)}
    )
    assert live == 1


async def test_bad_submits_change_nothing(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    canvas: Canvas,
    store: Store,
    services: Services,
    trap: tuple[list[bytes], int],
) -> None:
    """Every bad generate-video body gets its 4xx code, leaves every table as it was, and enqueues nothing."""
    pid = canvas["project"]
    video = canvas["video"]
    other_pid = await make_project(client, alice, "Other")
    other_upload = (await upload_image(client, alice, other_pid, image_bytes())).json()
    bob_pid = await make_project(client, bob, "Bob's")
    bob_video = (await make_node(client, bob, bob_pid, "video"))["id"]
    fetched, trap_port = trap
    own_host = client.base_url.host
    own_port = client.base_url.port
    before = await dump(store)

    def B(**changes: Any) -> dict[str, Any]:
        return {**video_body(video), **changes}

    cases: list[tuple[Any, int, str]] = [
        ({"node_id": video}, 422, "invalid_body"),
        (B(prompt=""), 422, "invalid_body"),
        (B(prompt="   \n\t"), 422, "invalid_prompt"),
        (B(prompt="x" * 4001), 422, "invalid_body"),
        (B(prompt=42), 422, "invalid_body"),
        (B(resolution="4k"), 422, "invalid_body"),
        (B(resolution=720), 422, "invalid_body"),
        (B(duration=5), 422, "invalid_body"),
        (B(duration="8"), 422, "invalid_body"),
        (B(duration=8.0), 422, "invalid_body"),
        (B(aspect_ratio="1:1"), 422, "invalid_body"),
        (B(negative_prompt="x" * 4001), 422, "invalid_body"),
        (B(seed=-1), 422, "invalid_body"),
        (B(seed="7"), 422, "invalid_body"),
        (B(generate_audio="yes"), 422, "invalid_body"),
        (B(extra=1), 422, "invalid_body"),
        (B(node_id="not-a-uuid"), 422, "invalid_body"),
        (B(resolution="1080p", duration=4), 422, "resolution_needs_8s"),
        (B(number_of_videos=5), 422, "invalid_body"),
        (B(person_generation="allow_all"), 422, "invalid_body"),
        (B(node_id=str(uuid.uuid4())), 404, "node_not_found"),
        (B(node_id=bob_video), 404, "node_not_found"),
        (B(node_id=canvas["image"]), 422, "not_a_video_node"),
        (B(node_id=canvas["prompt"]), 422, "not_a_video_node"),
        (
            B(image_url=f"http://127.0.0.1:{trap_port}/media/images/{pid}/x.png"),
            422,
            "invalid_image_url",
        ),
        (B(image_url=f"http://127.0.0.1:{trap_port}/cat.png"), 422, "invalid_image_url"),
        (B(image_url="http://169.254.169.254/latest/meta-data/"), 422, "invalid_image_url"),
        (B(image_url="file:///etc/passwd"), 422, "invalid_image_url"),
        (
            B(image_url=f"//127.0.0.1:{trap_port}/media/images/{pid}/x.png"),
            422,
            "invalid_image_url",
        ),
        (
            B(image_url=f"http://{own_host}:{own_port}@127.0.0.1:{trap_port}/media/x.png"),
            422,
            "invalid_image_url",
        ),
        (B(image_url=other_upload["key"]), 422, "invalid_image_url"),
        (B(image_url=other_upload["url"]), 422, "invalid_image_url"),
        (
            B(image_url=f"images/{pid}/../{other_pid}/{other_upload['key'].split('/')[-1]}"),
            422,
            "invalid_image_url",
        ),
        (B(image_url=f"/media/images/{pid}/%2e%2e/{other_pid}/x.png"), 422, "invalid_image_url"),
        (B(image_url=f"images/{pid}/{uuid.uuid4()}.png"), 422, "invalid_image_url"),
        (B(image_url="../../etc/passwd"), 422, "invalid_image_url"),
        (B(image_url=""), 422, "invalid_image_url"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/ai/generate-video", json=body, headers=alice.headers)
        assert_error(r, status, code)
    r = await client.post(
        "/api/ai/generate-video",
        content=b"{",
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert_error(r, 400, "malformed_json")
    r = await client.post("/api/ai/generate-video", json=B(), headers=bob.headers)
    assert_error(r, 404, "node_not_found")
    r = await client.post("/api/ai/generate-video", json=B())
    assert_error(r, 401, "unauthenticated")
    assert fetched == []
    assert await dump(store) == before
    assert await store.redis.zcard(queue_name(services.namespace)) == 0


async def test_read_job_and_latest(
    client: httpx.AsyncClient, alice: Account, bob: Account, canvas: Canvas
) -> None:
    """GET a job and a node's latest job; 404s for none, for others' and for unknown ids."""
    r = await client.get(f"/api/ai/nodes/{canvas['video']}/jobs/latest", headers=alice.headers)
    assert_error(r, 404, "job_not_found")
    first = await submit(client, alice, canvas["video"])
    r = await client.get(f"/api/ai/jobs/{first['job_id']}", headers=alice.headers)
    assert r.status_code == 200 and r.json() == first
    await client.post(f"/api/ai/jobs/{first['job_id']}/cancel", headers=alice.headers)
    second = await submit(client, alice, canvas["video"])
    r = await client.get(f"/api/ai/nodes/{canvas['video']}/jobs/latest", headers=alice.headers)
    assert r.status_code == 200 and r.json()["job_id"] == second["job_id"]
    assert set(r.json()) == {
        "job_id", "node_id", "project_id", "type", "status", "progress", "result", "error", "created_at", "updated_at", "created_by",
        "queue_position", "eta_s", "progress_estimated", "reserved_cost", "final_cost", "currency",
    }  # fmt: skip
    assert_error(
        await client.get(f"/api/ai/jobs/{first['job_id']}", headers=bob.headers),
        404,
        "job_not_found",
    )
    assert_error(
        await client.get(f"/api/ai/jobs/{uuid.uuid4()}", headers=alice.headers),
        404,
        "job_not_found",
    )
    assert_error(await client.get("/api/ai/jobs/nope", headers=alice.headers), 422, "invalid_id")
    assert_error(
        await client.get(f"/api/ai/nodes/{canvas['video']}/jobs/latest", headers=bob.headers),
        404,
        "node_not_found",
    )
    assert_error(
        await client.post(f"/api/ai/jobs/{second['job_id']}/cancel", headers=bob.headers),
        404,
        "job_not_found",
    )


async def test_cancel_pending_job(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """Cancelling a pending job marks it cancelled and the node idle; the worker then runs nothing."""
    job = await submit(client, alice, canvas["video"])
    r = await client.post(f"/api/ai/jobs/{job['job_id']}/cancel", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    node = (await client.get(f"/api/nodes/{canvas['video']}", headers=alice.headers)).json()
    assert node["status"] == "idle"
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
        assert harness.renderer.submitted == 0
        assert harness.queue is not None
        status = await ArqJob(
            job["job_id"], harness.queue, _queue_name=queue_name(services.namespace)
        ).status()
        assert status in (ArqStatus.complete, ArqStatus.not_found)
    assert (await client.get(f"/api/ai/jobs/{job['job_id']}", headers=alice.headers)).json()[
        "status"
    ] == "cancelled"
    assert (await event_kinds(store, canvas["project"]))[-2:] == ["job.created", "job.cancelled"]
    r = await client.post(f"/api/ai/jobs/{job['job_id']}/cancel", headers=alice.headers)
    assert_error(r, 409, "job_finished")
    # the node is free for a new job
    await submit(client, alice, canvas["video"])


@pytest.mark.timeout(90)
async def test_cancel_processing_job(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services, store: Store
) -> None:
    """Cancelling mid-render aborts the arq job; the worker stops without overwriting and stores no video."""
    job = await submit(client, alice, canvas["video"], duration=8)
    async with running_worker(settings_for(services)) as harness:
        deadline = time.monotonic() + 30
        while (current := await wait_for_job(client, alice, job["job_id"], ("processing",)))[
            "progress"
        ] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert current["progress"] < 1
        r = await client.post(f"/api/ai/jobs/{job['job_id']}/cancel", headers=alice.headers)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        # the abort reaches the worker: the arq job ends, the render stops and is dropped
        assert harness.queue is not None
        arq_job = ArqJob(job["job_id"], harness.queue, _queue_name=queue_name(services.namespace))
        for _ in range(100):
            if await arq_job.status() == ArqStatus.complete and not harness.renderer.operations:
                break
            await asyncio.sleep(0.05)
        assert await arq_job.status() == ArqStatus.complete
        assert harness.renderer.operations == {}
        await harness.stop()
    final = (await client.get(f"/api/ai/jobs/{job['job_id']}", headers=alice.headers)).json()
    assert final["status"] == "cancelled" and final["result"] is None
    node = (await client.get(f"/api/nodes/{canvas['video']}", headers=alice.headers)).json()
    assert node["status"] == "idle" and "video_key" not in node["data"]
    assert not (
        services.data_dir / "media" / f"videos/{canvas['project']}/{job['job_id']}.mp4"
    ).exists()
    kinds = await event_kinds(store, canvas["project"])
    assert kinds[-3:] == ["job.created", "job.started", "job.cancelled"]
    assert_error(
        await client.post(f"/api/ai/jobs/{job['job_id']}/cancel", headers=alice.headers),
        409,
        "job_finished",
    )


async def test_cancel_completed_job_is_409(
    client: httpx.AsyncClient, alice: Account, canvas: Canvas, services: Services
) -> None:
    """A finished job cannot be cancelled: 409 job_finished, and it stays completed."""
    job = await submit(client, alice, canvas["video"])
    async with WorkerHarness(settings_for(services)) as harness:
        await harness.drain()
    r = await client.post(f"/api/ai/jobs/{job['job_id']}/cancel", headers=alice.headers)
    assert_error(r, 409, "job_finished")
    assert (await client.get(f"/api/ai/jobs/{job['job_id']}", headers=alice.headers)).json()[
        "status"
    ] == "completed"
