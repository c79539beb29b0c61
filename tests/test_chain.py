"""A chain prompt → image_gen → video (first frame) → extend, through real web and worker processes.

Everything the chain made — nodes, typed links, every take and its media —
is still there after both processes restart.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from common import protocol
from tests.support.accounts import Account, sign_up
from tests.support.api import make_node, make_project
from tests.support.procs import WebProc
from tests.support.services import Services
from tests.support.workers import WorkerProcess, wait_for_job, worker_process
from tests.support.ws import WsClient


def clip_facts(data: bytes) -> tuple[float, int, Image.Image]:
    """Duration (s), frame count and first frame of an MP4, decoded with PyAV."""
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.duration is not None
        frames = list(container.decode(video=0))
        first: Image.Image = frames[0].to_image()  # type: ignore[no-untyped-call]
        return container.duration / av.time_base, len(frames), first


def mean(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[int, ...]:
    """The mean colour of a region given in fractions of the image."""
    w, h = image.size
    region = image.convert("RGB").crop(
        (int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h))
    )
    pixel = region.resize((1, 1)).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return tuple(int(c) for c in pixel)


async def start(web: WebProc, worker: WorkerProcess) -> None:
    """Start both processes and wait until the web one answers."""
    web.start()
    worker.start()
    await asyncio.to_thread(web.wait_ready)


async def run(
    client: httpx.AsyncClient, who: Account, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Submit a generation and wait for it to complete."""
    r = await client.post(path, json=body, headers=who.headers)
    assert r.status_code == 202, r.text
    job = await wait_for_job(client, who, r.json()["job_id"], timeout_s=90)
    assert job["status"] == "completed", job
    return job


async def takes(client: httpx.AsyncClient, who: Account, node_id: str) -> list[dict[str, Any]]:
    """Every take of a node, newest first."""
    r = await client.get(f"/api/nodes/{node_id}/takes", headers=who.headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["takes"]
    return found


@pytest.mark.timeout(300)
async def test_chain_renders_and_survives_a_restart(services: Services) -> None:
    """Image from a prompt, video from the image, extension of the video: playable MP4s whose durations add up, kept across restarts."""
    web = WebProc(services)
    worker = worker_process(services)
    await start(web, worker)
    try:
        async with httpx.AsyncClient(base_url=web.base_url, timeout=20) as client:
            alice = await sign_up(client)
            pid = await make_project(client, alice)
            prompt = await make_node(
                client, alice, pid, "prompt", data={"prompt": "a lighthouse on a cliff"}
            )
            gen = await make_node(client, alice, pid, "image_gen")
            first = await make_node(client, alice, pid, "video")
            longer = await make_node(client, alice, pid, "video")
            links = [
                (prompt, gen, None),
                (prompt, first, "prompt"),
                (gen, first, "first_frame"),
                (prompt, longer, "prompt"),
                (first, longer, "extend"),
            ]
            for source, target, port in links:
                body = {"source_id": source["id"], "target_id": target["id"]}
                if port:
                    body["target_port"] = port
                r = await client.post(
                    f"/api/projects/{pid}/connections", json=body, headers=alice.headers
                )
                assert r.status_code == 201, r.text
            shape = {"resolution": "720p", "aspect_ratio": "16:9"}
            await run(
                client,
                alice,
                "/api/ai/generate-image",
                {"node_id": gen["id"], "aspect_ratio": "16:9", "seed": 5},
            )
            [image_take] = await takes(client, alice, gen["id"])
            assert image_take["mime_type"] == "image/png"
            assert image_take["params"]["prompt"] == "a lighthouse on a cliff"
            await run(
                client,
                alice,
                "/api/ai/generate-video",
                {"node_id": first["id"], "duration": 4, **shape},
            )
            [video_take] = await takes(client, alice, first["id"])
            assert video_take["params"]["inputs"]["first_frame"]["take_id"] == image_take["id"]
            await run(
                client,
                alice,
                "/api/ai/generate-video",
                {"node_id": longer["id"], "duration": 8, **shape},
            )
            [extension] = await takes(client, alice, longer["id"])
            assert extension["params"]["inputs"]["extend"]["take_id"] == video_take["id"]

            picture = Image.open(io.BytesIO((await client.get(image_take["media_url"])).content))
            clip = (await client.get(video_take["media_url"])).content
            extended = (await client.get(extension["media_url"])).content
            clip_s, clip_frames, clip_first = clip_facts(clip)
            ext_s, ext_frames, ext_first = clip_facts(extended)
            assert clip_s == pytest.approx(4, abs=0.05)
            assert ext_s == pytest.approx(clip_s + 7, abs=0.05)
            assert ext_frames == clip_frames + 7 * 24
            assert extension["params"]["duration"] == video_take["params"]["duration"] + 7 == 11
            # the video starts on the generated image, the extension on the video
            top_left = (0.02, 0.1, 0.3, 0.4)
            for have, want in ((clip_first, picture), (ext_first, clip_first)):
                for a, b in zip(mean(have, top_left), mean(want, top_left), strict=True):
                    assert abs(a - b) < 40, (mean(have, top_left), mean(want, top_left))
            before = {
                "nodes": (
                    await client.get(f"/api/projects/{pid}/nodes", headers=alice.headers)
                ).json(),
                "connections": (
                    await client.get(f"/api/projects/{pid}/connections", headers=alice.headers)
                ).json(),
                "takes": [await takes(client, alice, n["id"]) for n in (gen, first, longer)],
            }

        # every process restarts
        await asyncio.to_thread(web.stop)
        await asyncio.to_thread(worker.stop)
        await start(web, worker)

        async with httpx.AsyncClient(base_url=web.base_url, timeout=20) as client:
            nodes = (await client.get(f"/api/projects/{pid}/nodes", headers=alice.headers)).json()
            connections = (
                await client.get(f"/api/projects/{pid}/connections", headers=alice.headers)
            ).json()
            after = [await takes(client, alice, n["id"]) for n in (gen, first, longer)]

            def unsigned(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [
                    {k: v for k, v in r.items() if k != "media_url" and k != "data"} for r in rows
                ]

            assert unsigned(nodes) == unsigned(before["nodes"])
            assert connections == before["connections"]
            assert [p["target_port"] for p in connections] == [
                "prompt",
                "prompt",
                "first_frame",
                "prompt",
                "extend",
            ]
            assert [unsigned(t) for t in after] == [unsigned(t) for t in before["takes"]]
            for page in after:
                r = await client.get(page[0]["media_url"])
                assert r.status_code == 200 and len(r.content) > 1000
            assert {n["id"]: n["active_take_id"] for n in nodes} == {
                prompt["id"]: None,
                gen["id"]: image_take["id"],
                first["id"]: video_take["id"],
                longer["id"]: extension["id"],
            }
            ws = await WsClient.open(web.base_url, alice.token)
            await ws.subscribe(pid)
            snap = await ws.expect(protocol.Snapshot, timeout_s=20)
            await ws.close()
            assert {str(t.id) for t in snap.takes} == {
                image_take["id"],
                video_take["id"],
                extension["id"],
            }
    finally:
        await asyncio.to_thread(web.stop)
        await asyncio.to_thread(worker.stop)
        for proc in (web, worker):
            await asyncio.to_thread(Path(proc.log_path).unlink, missing_ok=True)
