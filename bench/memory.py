"""Peak RSS of a worker and a web process fed the largest images the API accepts.

    python -m bench.memory [--database-url URL --redis-url URL] [--jobs N]

Starts `canvasflow web` and one worker (`CANVASFLOW_WORKER_MAX_JOBS=N`,
default the setting's default), uploads 6320x6320 images (the largest the
40 Mpx limit allows) four at a time while sampling the web process's RSS,
then runs N 1080p 8 s jobs at once from such an image while sampling the
worker's. A second round feeds the worker images stored at full size (as
uploads made before downscaling were), bypassing the upload path. Each peak
is printed beside the bound docs/deploy.md documents.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from PIL import Image

from bench.services import Meter, Services, WebProc, WorkerProc, fresh_services
from common.config import Settings
from server.decoding import DECODE_BYTES_PER_PIXEL

MIB = 1 << 20
SIDE = 6320  # 6320 x 6320 = 39.9 Mpx, under the default 40 Mpx limit
#: the bounds of docs/deploy.md, "Memory": a worker idles at ~150 MiB, and a local 1080p render
#: costs ~240 MiB (mostly libx264's lookahead) plus at most ~60 MiB for a 2560x2560 input image
WORKER_BASE_MIB = 200
WORKER_PER_JOB_MIB = 300
#: a web process idles at ~90 MiB; its decode budget holds one 40 Mpx image at a time, at
#: DECODE_BYTES_PER_PIXEL, plus the requests' bodies
WEB_BASE_MIB = 200
WEB_DECODE_MIB = DECODE_BYTES_PER_PIXEL * 40_000_000 // MIB + 50


def largest_image() -> bytes:
    """A 6320x6320 PNG: a gradient, so the file is small and the pixels are many."""
    image = Image.linear_gradient("L").resize((SIDE, SIDE)).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class PeakRss:
    """Samples one process's RSS every 20 ms in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.meter = Meter(pid)
        self.start_rss = self.meter.rss_bytes()
        self.peak = self.start_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.meter.rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _sign_up(c: httpx.AsyncClient) -> dict[str, str]:
    r = await c.post(
        "/api/auth/signup",
        json={"email": f"mem{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse"},
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def _post(c: httpx.AsyncClient, path: str, headers: dict[str, str], **kw: Any) -> Any:
    r = await c.post(path, headers=headers, **kw)
    if r.status_code >= 300:
        raise RuntimeError(f"{path}: {r.status_code} {r.text}")
    return r.json()


async def _run_jobs(
    c: httpx.AsyncClient, auth: dict[str, str], pid: str, image_key: str, jobs: int
) -> list[str]:
    job_ids = []
    for _ in range(jobs):
        node = await _post(c, f"/api/projects/{pid}/nodes", auth, json={"type": "video"})
        body = {
            "node_id": node["id"],
            "prompt": "a fox runs through fresh snow",
            "resolution": "1080p",
            "duration": 8,
            "aspect_ratio": "16:9",
            "image_url": image_key,
        }
        job_ids.append((await _post(c, "/api/ai/generate-video", auth, json=body))["job_id"])
    # a loaded 2-core machine renders ten 8 s 1080p clips in about 5 minutes
    deadline = time.monotonic() + 120 * jobs
    while time.monotonic() < deadline:
        statuses = [
            (await c.get(f"/api/ai/jobs/{j}", headers=auth)).json()["status"] for j in job_ids
        ]
        if all(s in ("completed", "failed", "cancelled") for s in statuses):
            if set(statuses) != {"completed"}:
                raise RuntimeError(f"jobs ended {statuses}")
            return job_ids
        await asyncio.sleep(0.5)
    raise RuntimeError("jobs did not finish")


async def _store_full_size(services: Services, pid: str, data: bytes) -> str:
    """An upload stored at full size, as before downscaling existed: file and row by hand."""
    upload_id = uuid.uuid4()
    key = f"images/{pid}/{upload_id}.png"
    path = Path(services.data_dir) / "media" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(
            "INSERT INTO uploads (id, project_id, key, mime_type, width, height, size_bytes) "
            "VALUES ($1, $2, $3, 'image/png', $4, $4, $5)",
            upload_id,
            uuid.UUID(pid),
            key,
            SIDE,
            len(data),
        )
    finally:
        await conn.close()
    return key


def _row(figure: str, peak: int, start: int, bound_mib: float) -> str:
    verdict = "PASS" if peak / MIB <= bound_mib else "FAIL"
    row = (
        f"| {figure} | {start / MIB:,.0f} MiB | {peak / MIB:,.0f} MiB | "
        f"{bound_mib:,.0f} MiB | {verdict} |"
    )
    # as soon as measured: a later round that fails must not lose it
    print(row, flush=True)
    return row


async def measure(services: Services, jobs: int) -> list[str]:
    """Run both rounds; returns the table rows."""
    web = WebProc(services)
    worker = WorkerProc(
        services, CANVASFLOW_WORKER_MAX_JOBS=str(jobs), CANVASFLOW_WORKER_POLL_DELAY_S="0.05"
    )
    web.start()
    worker.start()
    rows = []
    try:
        web.wait_ready()
        image = largest_image()
        print(f"image: {SIDE}x{SIDE} PNG, {len(image) / 1000:,.0f} KB", flush=True)
        async with httpx.AsyncClient(base_url=web.base_url, timeout=120) as c:
            auth = await _sign_up(c)
            pid = (await _post(c, "/api/projects", auth, json={"name": "memory"}))["id"]
            files = {"file": ("big.png", image, "application/octet-stream")}
            with PeakRss(web.pid) as web_rss:
                uploads = await asyncio.gather(
                    *(_post(c, f"/api/projects/{pid}/uploads", auth, files=files) for _ in range(4))
                )
            stored = uploads[0]
            print(f"stored as {stored['width']}x{stored['height']}", flush=True)
            rows.append(
                _row(
                    "web, 4 parallel uploads of 6320x6320",
                    web_rss.peak,
                    web_rss.start_rss,
                    WEB_BASE_MIB + WEB_DECODE_MIB,
                )
            )
            bound = WORKER_BASE_MIB + WORKER_PER_JOB_MIB * jobs
            with PeakRss(worker.pid) as worker_rss:
                started = time.monotonic()
                await _run_jobs(c, auth, pid, stored["key"], jobs)
            print(f"round 1: {jobs} jobs in {time.monotonic() - started:.0f} s", flush=True)
            rows.append(
                _row(
                    f"worker, {jobs} jobs at once, 1080p 8 s from an upload of 6320x6320",
                    worker_rss.peak,
                    worker_rss.start_rss,
                    bound,
                )
            )
            legacy = await _store_full_size(services, pid, image)
            with PeakRss(worker.pid) as worker_rss:
                started = time.monotonic()
                await _run_jobs(c, auth, pid, legacy, jobs)
            print(f"round 2: {jobs} jobs in {time.monotonic() - started:.0f} s", flush=True)
            rows.append(
                _row(
                    f"worker, {jobs} jobs at once, from a 6320x6320 image stored at full size",
                    worker_rss.peak,
                    worker_rss.start_rss,
                    bound,
                )
            )
    finally:
        worker.stop()
        web.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the table; exit 1 when a peak is over its bound."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--jobs", type=int, default=Settings().worker_max_jobs)
    args = parser.parse_args(argv)
    from bench.run import resolve_services

    admin_url, redis_url = resolve_services(args)
    with fresh_services(admin_url, redis_url) as services:
        rows = asyncio.run(measure(services, args.jobs))
    print("\n| process and load | RSS at start | peak RSS | bound | verdict |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0 if all(row.endswith("PASS |") for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
