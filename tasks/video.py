"""generate_video: the arq job that turns a pending video job into stored MP4s, one take each.

The only argument is the job id; everything else is read from Postgres, so
any worker can run any job, and the queue can never disagree with the row.
Claim, lease, deadline and retries are tasks/runs.py's; this module only
generates:

1. read the inputs the job names (first/last frame, references, the clip to
   extend) from storage by key;
2. submit to the provider and save the operation name at once; a run that
   finds one saved polls it instead of paying for a new generation. Progress
   ticks are ephemeral (`job.progress`, about once a second);
3. store each video at `videos/{project_id}/{job_id}.mp4` (the first) and
   `…/{job_id}-{i}.mp4`, then complete job and node in one change (COMPLETE,
   `job.completed`): every video a take, the first one active.

A provider that reports no progress (Veo) gets an estimated one instead, once
a second, from its kind's measured duration (db/estimates.py): flagged
`estimated`, never decreasing, and below 1 until the job completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from db.changes import publish_progress
from db.estimates import MAX_ESTIMATED, estimated_progress, expected_s, prior_s, running_eta
from db.jobs import Job
from db.takes import NewTake
from tasks.providers.base import (
    OperationLost,
    ProviderError,
    VideoOutput,
    VideoProvider,
    VideoRequest,
    output_duration_s,
)
from tasks.runs import Run, Stop, run_job, timeout_message

__all__ = ["JOB_TYPE", "generate_video", "timeout_message", "video_request"]

log = logging.getLogger(__name__)

#: jobs.type of the jobs this module runs (tasks/queue.py maps it to `generate_video`)
JOB_TYPE = "video"
#: at most one ephemeral progress tick (and one progress write) per job per second
PROGRESS_INTERVAL_S = 1.0
#: how often one run may resubmit after the provider lost its operation
MAX_RESUBMITS = 2
#: the request's choices a take keeps (with its inputs, seed and actual length)
_TAKE_PARAMS = (
    "prompt",
    "resolution",
    "aspect_ratio",
    "negative_prompt",
    "generate_audio",
    "enhance_prompt",
    "person_generation",
    "number_of_videos",
    "inputs",
)


def video_request(params: dict[str, Any], media: dict[str, bytes] | None = None) -> VideoRequest:
    """The provider request of a job's stored params; `media` holds input bytes by key.

    Without `media` (at submit) the inputs are described by their types only.
    """
    media = media or {}

    def data(key: str | None) -> bytes | None:
        return media.get(key) if key else None

    refs = list(params.get("reference_keys") or [])
    return VideoRequest(
        prompt=params["prompt"],
        resolution=params["resolution"],
        duration_s=int(params["duration"]),
        aspect_ratio=params["aspect_ratio"],
        negative_prompt=params.get("negative_prompt"),
        image=data(params.get("image_key")),
        image_mime_type=params.get("image_mime_type") if params.get("image_key") else None,
        seed=params.get("seed"),
        generate_audio=bool(params.get("generate_audio", False)),
        number_of_videos=int(params.get("number_of_videos") or 1),
        enhance_prompt=params.get("enhance_prompt"),
        person_generation=params.get("person_generation"),
        last_frame=data(params.get("last_frame_key")),
        last_frame_mime_type=params.get("last_frame_mime_type"),
        reference_images=tuple(media[k] for k in refs if k in media),
        reference_mime_types=tuple(params.get("reference_mime_types") or []),
        extend_video=data(params.get("extend_key")),
        extend_resolution=params.get("extend_resolution"),
        extend_duration_s=params.get("extend_duration"),
    )


def input_keys(params: dict[str, Any]) -> list[str]:
    """Every storage key a job reads: its images and the clip it extends."""
    keys = [params.get("image_key"), params.get("last_frame_key"), params.get("extend_key")]
    keys += list(params.get("reference_keys") or [])
    return [k for k in keys if k]


def video_key(job: Job, index: int) -> str:
    """Where output `index` of a job is stored (the first keeps the one-video name)."""
    suffix = "" if index == 0 else f"-{index}"
    return f"videos/{job.project_id}/{job.id}{suffix}.mp4"


class VideoRun(Run):
    """One attempt at one video job."""

    def __init__(self, ctx: dict[str, Any], job: Job) -> None:
        super().__init__(ctx, job)
        self.provider: VideoProvider = ctx["provider"]
        #: the provider operation this run is waiting for
        self.operation: str | None = job.provider_operation

    async def discard(self) -> None:
        """Let the provider drop the operation of a run that stops, if it can (local renders)."""
        cancel = getattr(self.provider, "cancel", None)
        if self.operation is not None and cancel is not None:
            with contextlib.suppress(Exception):
                await cancel(self.operation)

    async def submit(self, request: VideoRequest) -> str:
        """Start a generation and save its operation name before anything else happens."""
        operation = await self.provider.submit(request)
        await self.save(provider_operation=operation, progress=0.0)
        log.info("job %s: submitted to %s as %s", self.job.id, self.provider.name, operation)
        return operation

    async def generate(self) -> None:
        """Read the inputs, submit (or resume), poll with progress, download, store, complete."""
        params = self.job.params
        media = {key: await self.storage.get_bytes(key) for key in input_keys(params)}
        request = video_request(params, media)
        if self.operation is not None:
            log.info("job %s: resuming operation %s", self.job.id, self.operation)
        resubmits = 0
        with tempfile.TemporaryDirectory(prefix="cf-job-") as tmp:
            while True:
                try:
                    if self.operation is None:
                        self.operation = await self.submit(request)
                    await self.wait_done(self.operation)
                    outputs = await self.provider.download(self.operation, Path(tmp))
                    break
                except OperationLost as exc:
                    # the provider forgot it (e.g. the local renderer of a dead worker)
                    resubmits += 1
                    if resubmits > MAX_RESUBMITS:
                        raise ProviderError(f"the provider keeps losing it: {exc}") from exc
                    log.info("job %s: %s; submitting again", self.job.id, exc)
                    self.operation = None
            if not outputs:
                raise ProviderError("the provider finished without a video")
            keys = []
            for i, out in enumerate(outputs):
                keys.append(video_key(self.job, i))
                await self.storage.put_file(keys[-1], out.path, "video/mp4")
        try:
            await self.complete(keys, outputs, request)
        except Stop:
            await self.drop_stored(keys)
            raise

    async def wait_done(self, operation: str) -> None:
        """Poll until done, publishing progress at most once per PROGRESS_INTERVAL_S.

        While the provider reports no progress, `estimate_progress` publishes one.
        """
        interval_s: float = getattr(self.provider, "poll_interval_s", 5.0)
        last_tick = 0.0
        last_progress: float | None = None
        mean_s = await expected_s(self.store.db, self.job.duration_key)
        estimator: asyncio.Task[None] | None = None
        try:
            while True:
                state = await self.provider.poll(operation)
                if state.done:
                    return
                now = time.monotonic()
                progress = state.progress
                if progress is None and estimator is None:
                    estimator = asyncio.create_task(self.estimate_progress(mean_s))
                due = now - last_tick >= PROGRESS_INTERVAL_S
                if progress is not None and progress != last_progress and due:
                    # the row too, so clients polling GET /api/ai/jobs/{id} see it
                    await self.save(progress=progress)
                    eta = running_eta(mean_s, self.job.started_at)
                    await publish_progress(
                        self.store, self.job.project_id, self.job.id, progress, eta_s=eta
                    )
                    last_tick, last_progress = now, progress
                await asyncio.sleep(interval_s)
        finally:
            if estimator is not None:
                estimator.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await estimator

    async def estimate_progress(self, mean_s: float | None) -> None:
        """Publish (and save) an estimated progress once a second: monotonic, below 1.

        Measured from the job's first start, so a run that took the job over goes on
        from where the last one was; a kind nothing has measured uses the prior.
        """
        expected = mean_s if mean_s is not None else prior_s(self.job.type)
        started = self.job.started_at
        last = min(self.job.progress, MAX_ESTIMATED)
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            elapsed = 0.0 if started is None else (datetime.now(UTC) - started).total_seconds()
            progress = round(max(last, estimated_progress(elapsed, expected)), 3)
            if progress <= last:
                continue
            try:
                await self.save(progress=progress, progress_estimated=True)
                await publish_progress(
                    self.store,
                    self.job.project_id,
                    self.job.id,
                    progress,
                    estimated=True,
                    eta_s=running_eta(mean_s, started),
                )
            except Stop:
                return  # the run lost the job: its main loop finds out on its next write
            except Exception as exc:  # a database blip: the next second tries again
                log.warning("job %s: estimated progress not saved: %r", self.job.id, exc)
                continue
            last = progress

    async def complete(
        self, keys: list[str], outputs: list[VideoOutput], request: VideoRequest
    ) -> None:
        """Job completed with its result, each video a take, node showing the first: one change."""
        params = self.job.params
        kept = {name: params[name] for name in _TAKE_PARAMS if params.get(name) is not None}
        takes = []
        for i, (key, out) in enumerate(zip(keys, outputs, strict=True)):
            seed = out.seed if out.seed is not None else request.seed
            duration = out.duration_s or output_duration_s(request)
            take_params = {**kept, "duration": duration, "seed": seed}
            takes.append(
                NewTake(
                    index=i, media_key=key, mime_type="video/mp4", params=take_params, seed=seed
                )
            )
        result = {
            "video_key": keys[0],
            "video_keys": keys,
            "mime_type": "video/mp4",
            "duration": takes[0].params["duration"],
            "resolution": request.resolution,
            "aspect_ratio": request.aspect_ratio,
        }
        await self.finish(result, takes, "video_key", request.number_of_videos)


async def generate_video(ctx: dict[str, Any], job_id: str) -> str:
    """arq job: generate the videos of job `job_id`; returns what happened, for arq's log."""
    return await run_job(ctx, job_id, VideoRun)
