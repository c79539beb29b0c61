"""generate_image: the arq job that makes an image_gen node's images, one take each.

Same life as a video job (tasks/runs.py: claim, lease, deadline, retries;
db/lifecycle.py: every status move), with a provider that answers in one call:
generate, store each image at `images/{project_id}/{job_id}-{i}.{ext}`, then
complete job and node in one change (`job.completed` with the takes; the
node's `data.image_key` is the first image's).
"""

from __future__ import annotations

import logging
from typing import Any

from db.jobs import Job
from db.takes import NewTake
from tasks.providers.base import ProviderError
from tasks.providers.images import ImageOutput, ImageProvider, ImageRequest
from tasks.runs import Run, Stop, run_job

log = logging.getLogger(__name__)

#: jobs.type of the jobs this module runs (tasks/queue.py maps it to `generate_image`)
JOB_TYPE = "image"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_request(params: dict[str, Any]) -> ImageRequest:
    """The provider request of a job's stored params."""
    return ImageRequest(
        prompt=params["prompt"],
        aspect_ratio=params["aspect_ratio"],
        number_of_images=int(params.get("number_of_images") or 1),
        seed=params.get("seed"),
        image_size=params.get("image_size") or "1K",
    )


def image_key(job: Job, index: int, mime_type: str) -> str:
    """Where image `index` of a job is stored."""
    return f"images/{job.project_id}/{job.id}-{index}.{_EXTENSIONS.get(mime_type, 'png')}"


class ImageRun(Run):
    """One attempt at one image job."""

    def __init__(self, ctx: dict[str, Any], job: Job) -> None:
        super().__init__(ctx, job)
        self.provider: ImageProvider = ctx["image_provider"]

    async def generate(self) -> None:
        """Make the images, store them, complete the job with one take each."""
        request = image_request(self.job.params)
        outputs = await self.provider.generate(request)
        if not outputs:
            raise ProviderError("the provider finished without an image")
        # the run may have lost the job while the provider worked: store nothing then
        await self.save(progress=0.9)
        keys = []
        for i, out in enumerate(outputs):
            keys.append(image_key(self.job, i, out.mime_type))
            await self.storage.put_bytes(keys[-1], out.data, out.mime_type)
        try:
            await self.complete(keys, outputs, request)
        except Stop:
            await self.drop_stored(keys)
            raise

    async def complete(
        self, keys: list[str], outputs: list[ImageOutput], request: ImageRequest
    ) -> None:
        """Job completed, each image a take, the node showing the first: one change."""
        params = {
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio,
            "image_size": request.image_size,
            "number_of_images": request.number_of_images,
        }
        if self.job.params.get("inputs"):
            params["inputs"] = self.job.params["inputs"]
        takes = [
            NewTake(
                index=i,
                media_key=key,
                mime_type=out.mime_type,
                params={**params, "seed": out.seed},
                seed=out.seed,
            )
            for i, (key, out) in enumerate(zip(keys, outputs, strict=True))
        ]
        result = {
            "image_key": keys[0],
            "image_keys": keys,
            "mime_type": outputs[0].mime_type,
            "aspect_ratio": request.aspect_ratio,
        }
        await self.finish(result, takes, "image_key", request.number_of_images)


async def generate_image(ctx: dict[str, Any], job_id: str) -> str:
    """arq job: make the images of job `job_id`; returns what happened, for arq's log."""
    return await run_job(ctx, job_id, ImageRun)
