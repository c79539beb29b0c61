"""Veo through google-genai (async client) on Vertex AI.

google-genai generates videos only in Vertex AI mode (its Gemini Developer
API mode refuses `generate_videos`), so the client runs with
`vertexai=True`: with a project and Application Default Credentials
(CANVASFLOW_VEO_PROJECT), or else with an API key (GEMINI_API_KEY, Vertex AI
express mode). The calls it makes:

- submit: `POST …/publishers/google/models/{model}:predictLongRunning`
- poll: `POST …/{model}:fetchPredictOperation` with the operation name
- download: the finished operation carries the MP4s themselves (base64),
  because no output bucket is named; the SDK decodes them.

Every choice of a request maps onto the SDK's own fields: `number_of_videos`,
`seed`, `enhance_prompt`, `generate_audio` (to models with audio only),
`person_generation`, `last_frame` and `reference_images` (ASSET) on
GenerateVideosConfig; the first frame (`image`) or the clip to extend
(`video`) on GenerateVideosSource.

The operation name returned by `submit` is all a later run needs: a worker
that takes over a job polls the same operation, possibly in another process.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from google import genai
from google.genai import errors, types

from common.config import ConfigError, Settings
from tasks.providers.base import (
    InvalidRequest,
    OperationLost,
    PollResult,
    ProviderError,
    QuotaExceeded,
    SafetyBlocked,
    TransientProviderError,
    VideoOutput,
    VideoRequest,
)
from tasks.providers.capabilities import capabilities_of, check_request
from tasks.providers.genai_client import make_client

log = logging.getLogger(__name__)

#: the wait between polls grows by this factor per poll, up to MAX_POLL_INTERVAL_S
POLL_BACKOFF = 1.5
MAX_POLL_INTERVAL_S = 60.0
#: HTTP statuses worth another try; a poll retries them in place, a submit via the job
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: retries of a poll in place, so one 503 does not cost the job one of its tries
_POLL_RETRY = types.HttpRetryOptions(attempts=4, initial_delay=1.0, max_delay=10.0)


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection and timeout errors of the HTTP libraries google-genai may use."""
    found: list[type[Exception]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def map_api_error(exc: errors.APIError, doing: str) -> ProviderError:
    """The ProviderError for an HTTP error of the Veo API: transient ones are retried."""
    detail = f"{doing}: {exc.code} {exc.status or ''} {exc.message or ''}".strip()
    detail = " ".join(detail.split())
    if exc.code == 429:
        return QuotaExceeded(detail)
    if exc.code in _TRANSIENT_STATUSES:
        return TransientProviderError(detail)
    if exc.code in (400, 422):
        return InvalidRequest(detail)
    return ProviderError(detail)


def _operation_error(error: dict[str, Any]) -> ProviderError:
    """The ProviderError for a finished operation's `error` ({code, message}).

    Always permanent: a retry of the job would resume this same finished
    operation (its name is saved on the job) and read the same error again.
    """
    return ProviderError(str(error.get("message") or "the operation failed without a message"))


class VeoProvider:
    """Generates videos with Veo; see the module docstring for the calls it makes."""

    name = "veo"
    #: the worker's own pause between polls; this provider waits in `poll` instead (backoff)
    poll_interval_s = 0.0

    def __init__(self, client: genai.Client, model: str, poll_interval_s: float = 10.0) -> None:
        capabilities_of(model)
        self.client = client
        self.model = model
        self.first_poll_interval_s = poll_interval_s
        #: how the SDK retries one poll's transient HTTP errors before giving up
        self.poll_retry = _POLL_RETRY
        #: polls so far per operation (this process), for the backoff
        self._polls: dict[str, int] = {}
        #: finished operations seen by `poll`, so `download` need not fetch the video again
        self._done: dict[str, types.GenerateVideosOperation] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> VeoProvider:
        """A provider for the configured project (or API key), location and model."""
        try:
            capabilities_of(settings.veo_model)
        except KeyError as exc:
            raise ConfigError(f"CANVASFLOW_VEO_MODEL: {exc.args[0]}") from None
        client = make_client(settings, settings.veo_base_url)
        return cls(client, settings.veo_model, settings.veo_poll_interval_s)

    def check(self, request: VideoRequest) -> None:
        """Raise Unsupported (an InvalidRequest with a `code`) for what the model cannot make."""
        check_request(self.model, request)

    def config_for(self, request: VideoRequest) -> types.GenerateVideosConfig:
        """The GenerateVideosConfig of a request: every choice the user made, nothing else."""
        caps = capabilities_of(self.model)
        last_frame = None
        if request.last_frame is not None:
            last_frame = types.Image(
                image_bytes=request.last_frame, mime_type=request.last_frame_mime_type
            )
        references = [
            types.VideoGenerationReferenceImage(
                image=types.Image(image_bytes=data, mime_type=mime_type),
                reference_type=types.VideoGenerationReferenceType.ASSET,
            )
            for data, mime_type in zip(
                request.reference_images, request.reference_mime_types, strict=True
            )
        ]
        return types.GenerateVideosConfig(
            number_of_videos=request.number_of_videos,
            duration_seconds=request.duration_s,
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            negative_prompt=request.negative_prompt,
            seed=request.seed,
            # silent models refuse the field itself, so it is sent only where it means something
            generate_audio=request.generate_audio if caps.audio else None,
            enhance_prompt=request.enhance_prompt,
            person_generation=request.person_generation,
            last_frame=last_frame,
            reference_images=references or None,
        )

    def source_for(self, request: VideoRequest) -> types.GenerateVideosSource:
        """The prompt, and the first frame or the clip to extend (the SDK takes one of them)."""
        image = None
        if request.image is not None:
            image = types.Image(image_bytes=request.image, mime_type=request.image_mime_type)
        video = None
        if request.extend_video is not None:
            video = types.Video(video_bytes=request.extend_video, mime_type="video/mp4")
        return types.GenerateVideosSource(prompt=request.prompt, image=image, video=video)

    async def submit(self, request: VideoRequest) -> str:
        """Start a generation; returns the operation name to save on the job."""
        self.check(request)
        try:
            operation = await self.client.aio.models.generate_videos(
                model=self.model, source=self.source_for(request), config=self.config_for(request)
            )
        except errors.APIError as exc:
            raise map_api_error(exc, "submit") from exc
        except _TRANSPORT_ERRORS as exc:
            raise TransientProviderError(f"submit: {type(exc).__name__}: {exc}") from exc
        if not operation.name:
            raise ProviderError("submit: Veo answered without an operation name")
        return operation.name

    async def fetch(self, operation: str) -> types.GenerateVideosOperation:
        """The operation as Veo reports it now (transient HTTP errors retried in place)."""
        retry = types.HttpOptions(retry_options=self.poll_retry)
        config = types.GetOperationConfig(http_options=retry)
        try:
            return await self.client.aio.operations.get(
                types.GenerateVideosOperation.model_validate({"name": operation}), config=config
            )
        except errors.APIError as exc:
            if exc.code == 404:
                raise OperationLost(f"Veo no longer knows operation {operation}") from exc
            raise map_api_error(exc, "poll") from exc
        except _TRANSPORT_ERRORS as exc:
            raise TransientProviderError(f"poll: {type(exc).__name__}: {exc}") from exc

    def next_delay_s(self, operation: str) -> float:
        """How long to wait before polling `operation` again (grows per poll)."""
        polls = self._polls.get(operation, 0)
        self._polls[operation] = polls + 1
        return float(min(MAX_POLL_INTERVAL_S, self.first_poll_interval_s * POLL_BACKOFF**polls))

    async def poll(self, operation: str) -> PollResult:
        """Wait the backoff, then fetch the operation; raise what stopped it, if anything."""
        await asyncio.sleep(self.next_delay_s(operation))
        op = await self.fetch(operation)
        if not op.done:
            return PollResult(done=False, progress=None)
        self._polls.pop(operation, None)
        self.videos_of(op)
        self._done[operation] = op
        return PollResult(done=True, progress=1.0)

    def videos_of(self, op: types.GenerateVideosOperation) -> list[bytes]:
        """The MP4 bytes of each video of a finished operation; raises why there are none."""
        if op.error:
            raise _operation_error(op.error)
        result = op.response or op.result
        videos = (result.generated_videos if result else None) or []
        if result is not None and result.rai_media_filtered_count and not videos:
            reasons = "; ".join(result.rai_media_filtered_reasons or []) or "no reason given"
            raise SafetyBlocked(reasons)
        found = [v.video for v in videos if v.video is not None]
        if not found:
            raise ProviderError("Veo finished without a video")
        for video in found:
            if not video.video_bytes:
                where = video.uri or "nowhere"
                raise ProviderError(f"Veo stored the video at {where} instead of returning it")
        return [video.video_bytes for video in found if video.video_bytes]

    async def download(self, operation: str, dest_dir: Path) -> list[VideoOutput]:
        """Write the finished operation's MP4s into `dest_dir`, in the order Veo gave them.

        Veo reports neither seed nor length per video: the job knows both from
        its request (an operation may be resumed by another worker).
        """
        op = self._done.pop(operation, None)
        if op is None:
            op = await self.fetch(operation)
            if not op.done:
                raise ProviderError(f"operation {operation} is not done yet")
        outputs = []
        for i, data in enumerate(self.videos_of(op)):
            dest = dest_dir / f"video-{i}.mp4"
            await asyncio.to_thread(dest.write_bytes, data)
            outputs.append(VideoOutput(path=dest))
        return outputs

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections (worker shutdown)."""
        await self.client.aio.aclose()
