"""canvasflow's side of 6. Submit.

- Throughput: POST /api/ai/generate-video, one request per video node, closed loop with
  `submit_concurrency` in flight, NO worker running (so rendering does not share the CPU
  with what is measured); the queued jobs are then withdrawn (queue and job rows) so that
  no worker ever renders them.
- Pickup: a worker running, jobs submitted at a low rate; latency from the 202 to the
  job's "processing" event on the project's Redis channel (the worker's guarded UPDATE,
  published through db.changes), on the bench's one clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import asyncpg
import msgspec

from bench.http_load import Call, post_all
from bench.plan import Context
from bench.profile import sampled
from bench.services import CpuSplit, Meter, Services, WorkerProc, loopback_open, make_seats
from bench.stats import Latency

PATH = "/api/ai/generate-video"


def video_request(node_id: str) -> dict[str, Any]:
    """The cheapest valid generate-video body (shortest clip, lowest resolution)."""
    return {
        "node_id": node_id,
        "prompt": "a benchmark: a red ball rolling",
        "resolution": "720p",
        "duration": 4,
        "aspect_ratio": "16:9",
    }


async def make_video_nodes(database_url: str, projects: int, per_project: int) -> list[Call]:
    """`per_project` video nodes in each of `projects` projects (own users); one call each."""
    seats = await make_seats(database_url, projects)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "INSERT INTO nodes (project_id, type) "
            "SELECT p, 'video' FROM unnest($1::uuid[]) p, generate_series(1, $2) "
            "RETURNING id::text, project_id::text",
            [s.project_id for s in seats],
            per_project,
        )
    finally:
        await conn.close()
    token = {s.project_id: s.token for s in seats}
    calls = [Call(PATH, token[r["project_id"]], video_request(r["id"])) for r in rows]
    # interleave projects so concurrent requests hit different projects (and users)
    calls.sort(key=lambda c: c.body["node_id"])
    return calls


async def withdraw_jobs(services: Services) -> int:
    """Cancel every pending job and empty the queue, so no worker renders the load's jobs."""
    from redis.asyncio import Redis

    from common.keys import queue_name

    conn = await asyncpg.connect(services.database_url)
    try:
        async with conn.transaction():
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "UPDATE jobs SET status = 'cancelled', updated_at = now() "
                    "WHERE status IN ('pending', 'processing') RETURNING id::text AS id"
                )
            ]
            # as a cancel leaves them; else the worker's sweeper resets thousands of nodes
            # (a change each) while the pickups are being measured
            await conn.execute("UPDATE nodes SET status = 'idle' WHERE status = 'processing'")
    finally:
        await conn.close()
    client = Redis.from_url(services.redis_url)
    try:
        await client.delete(queue_name(services.namespace))
        for i in range(0, len(ids), 500):
            await client.delete(*(f"arq:job:{j}" for j in ids[i : i + 500]))
    finally:
        await client.aclose()
    return len(ids)


class PickupWatcher:
    """Listens to every project channel of the run; notes when each job turns processing."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.seen: dict[str, float] = {}
        self.kinds: dict[str, int] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import redis

        from common.keys import project_channel_prefix

        client = redis.Redis.from_url(self.services.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.psubscribe(project_channel_prefix(self.services.namespace) + "*")
        self._ready.set()
        try:
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                now = time.monotonic()
                try:
                    event = msgspec.json.decode(message["data"])
                except msgspec.DecodeError:
                    continue
                kind = str(event.get("kind") or event.get("type"))
                self.kinds[kind] = self.kinds.get(kind, 0) + 1
                job = _job_of(event.get("data"))
                job_id = job and job.get("job_id", job.get("id"))
                if job and job.get("status") == "processing" and job_id:
                    self.seen.setdefault(str(job_id), now)
        finally:
            pubsub.close()
            client.close()

    def __enter__(self) -> PickupWatcher:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _job_of(data: Any) -> dict[str, Any] | None:
    """The job in an event's data: `data.job`, or data itself when it is a job."""
    if not isinstance(data, dict):
        return None
    job = data.get("job")
    if isinstance(job, dict):
        return job
    if "status" in data and ("job_id" in data or "id" in data):
        return {"id": data.get("job_id", data.get("id")), "status": data["status"]}
    return None


def _post(base_url: str, call: Call) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        base_url + call.path,
        data=msgspec.json.encode(call.body),
        method="POST",
        headers={"Authorization": f"Bearer {call.token}", "Content-Type": "application/json"},
    )
    try:
        with loopback_open(request, timeout=10) as r:
            return r.status, msgspec.json.decode(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _cancel(base_url: str, call: Call, job_id: str) -> None:
    """POST /api/ai/jobs/{job_id}/cancel (a job already finished answers 409: fine)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{base_url}/api/ai/jobs/{job_id}/cancel",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {call.token}"},
    )
    try:
        with loopback_open(request, timeout=10):
            pass
    except urllib.error.HTTPError:
        pass


#: a probe goes out once the worker used less than this share of a core over a window
PROBE_IDLE_CPU = 0.10
#: ... or after this long at most (then the figure shows the render's cost)
PROBE_IDLE_MAX_S = 3.0


def wait_idle(meter: Meter, cpu_share: float, max_s: float, window_s: float = 0.05) -> float:
    """Block until the process used under `cpu_share` of a core over `window_s` (at most
    `max_s`); returns how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_s:
        before = meter.cpu_s()
        time.sleep(window_s)
        if meter.cpu_s() - before < cpu_share * window_s:
            break
    return time.monotonic() - t0


def measure(ctx: Context) -> dict[str, Any]:
    """Throughput without a worker, then pickup latency with one."""
    s = ctx.sizes
    projects = max(1, min(100, s.submit_requests // 30))
    per_project = -(-(s.submit_requests + s.submit_pickups + 1) // projects)
    calls = asyncio.run(make_video_nodes(ctx.services.database_url, projects, per_project))
    load_calls, pickup_calls = calls[: s.submit_requests], calls[s.submit_requests :]
    web = ctx.web().start()
    worker: WorkerProc | None = None
    try:
        web.wait_ready()
        # 1. throughput: warm up with a few requests, then the closed loop
        post_all(web.base_url, load_calls[:8], 4, 1, 30)
        with (
            sampled(web.pid, ctx.profile_path("submit-web")) as prof,
            CpuSplit(Meter(web.pid), []) as load_cpu,
        ):
            load = post_all(
                web.base_url,
                load_calls[8:],
                s.submit_concurrency,
                2,
                budget_s=60 if ctx.smoke else 120,
            )
        withdrawn = asyncio.run(withdraw_jobs(ctx.services))
        # 2. pickup: a worker, jobs paced so each is picked up from an idle queue
        worker = WorkerProc(ctx.services)
        worker.start()
        pickups: dict[str, float] = {}
        submitted: dict[str, float] = {}
        idle_waits: list[float] = []
        with (
            PickupWatcher(ctx.services) as watcher,
            sampled(worker.pid, ctx.profile_path("submit-worker")) as worker_prof,
        ):
            status, body = _post(web.base_url, pickup_calls[0])  # warm-up job: worker is up
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and str(body.get("job_id")) not in watcher.seen:
                if not worker.alive:
                    raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
                time.sleep(0.05)
            _cancel(web.base_url, pickup_calls[0], str(body.get("job_id")))
            t0 = time.monotonic()
            worker_meter = Meter(worker.pid)
            for i, call in enumerate(pickup_calls[1 : s.submit_pickups + 1]):
                delay = t0 + i / s.submit_pickup_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # the last probe's render stops a frame or two after its cancel reaches the
                # worker; a probe sent meanwhile would measure the render, not the pickup
                idle_waits.append(wait_idle(worker_meter, PROBE_IDLE_CPU, PROBE_IDLE_MAX_S))
                status, body = _post(web.base_url, call)
                if status != 202:
                    continue
                job_id = str(body["job_id"])
                submitted[job_id] = time.monotonic()
                # once picked up, the job is cancelled: its render would take the CPU the
                # next pickups are measured on (Veo renders elsewhere; the local renderer here)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and job_id not in watcher.seen:
                    time.sleep(0.002)
                _cancel(web.base_url, call, job_id)
            pickups = {j: watcher.seen[j] - t for j, t in submitted.items() if j in watcher.seen}
            kinds = dict(watcher.kinds)
    finally:
        if worker is not None:
            worker.stop()
        web.stop()
    non_202 = sum(v for k, v in load["statuses"].items() if k != 202)
    return {
        "requests": len(load["latencies_s"]),
        "concurrency": load["concurrency"],
        "requests_per_s": round(load["requests_per_s"], 1),
        "latency": Latency.of_seconds(load["latencies_s"]).as_dict(),
        "statuses": load["statuses"],
        "non_202": non_202,
        # web process vs the whole machine (load generator, Postgres, Redis, others)
        "web_cpu_percent": load_cpu.figures["server_cpu_percent"],
        "machine_busy_percent": load_cpu.figures["machine_busy_percent"],
        "sample_errors": load["sample_errors"],
        "jobs_withdrawn": withdrawn,
        "pickup": Latency.of_seconds(list(pickups.values())).as_dict(),
        "pickups_missing": len(submitted) - len(pickups),
        "pickup_rate_per_s": s.submit_pickup_rate,
        "worker_idle_wait_before_probe": Latency.of_seconds(idle_waits).as_dict(),
        "event_kinds_seen": kinds,
        **({"profile": prof, "worker_profile": worker_prof} if prof else {}),
    }
