"""The video provider interface: submit a generation, poll it, download its videos.

A provider's operation name is saved on the job as soon as `submit` returns,
so a worker that takes over an interrupted job polls the same operation
instead of paying for a new generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec


class ProviderError(Exception):
    """A generation failed; `transient` errors are retried with backoff."""

    transient = False


class TransientProviderError(ProviderError):
    """Worth retrying: rate limits (429), server errors (5xx), timeouts."""

    transient = True


class QuotaExceeded(TransientProviderError):
    """The provider asked us to slow down (HTTP 429)."""


class InvalidRequest(ProviderError):
    """The provider refused the parameters; retrying cannot help."""


class SafetyBlocked(ProviderError):
    """The provider's safety filters blocked the prompt, the image or the result."""


class OperationLost(ProviderError):
    """The provider no longer knows the operation (e.g. the local renderer restarted)."""


class VideoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a provider needs to generate one job's videos.

    At submit the web process checks a request whose media bytes are not read
    yet: the `*_mime_type` fields (and `extend_*`) say which inputs there are,
    the bytes come when the worker runs.
    """

    prompt: str
    resolution: str  # "720p" | "1080p"
    duration_s: int  # 4 | 6 | 8
    aspect_ratio: str  # "16:9" | "9:16"
    negative_prompt: str | None = None
    #: the first frame
    image: bytes | None = None
    image_mime_type: str | None = None
    seed: int | None = None
    generate_audio: bool = False
    #: variants of one request: each output becomes a take
    number_of_videos: int = 1
    #: None leaves the model's default
    enhance_prompt: bool | None = None
    #: "dont_allow" | "allow_adult"; None leaves the model's default
    person_generation: str | None = None
    #: the last frame: the clip morphs from the first frame into it
    last_frame: bytes | None = None
    last_frame_mime_type: str | None = None
    #: images of what should appear (asset references)
    reference_images: tuple[bytes, ...] = ()
    reference_mime_types: tuple[str, ...] = ()
    #: the clip to extend (MP4), with its resolution and length
    extend_video: bytes | None = None
    extend_resolution: str | None = None
    extend_duration_s: int | None = None

    @property
    def extends(self) -> bool:
        """Whether this request continues an existing clip."""
        return self.extend_duration_s is not None


#: seconds an extension adds to its source clip (Veo 3.1; the local renderer does the same)
EXTENSION_ADDED_S = 7


def output_duration_s(request: VideoRequest) -> int:
    """How long each output of `request` is: an extension is its source plus the added seconds."""
    if request.extend_duration_s is not None:
        return request.extend_duration_s + EXTENSION_ADDED_S
    return request.duration_s


class VideoOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One finished video of an operation, written to `path`."""

    path: Path
    #: the seed that made it, when the provider says (else the request's)
    seed: int | None = None
    #: its length, when the provider says (else output_duration_s of the request)
    duration_s: int | None = None


class PollResult(msgspec.Struct, frozen=True, kw_only=True):
    """Where an operation is: `done`, or running with an optional progress in [0, 1]."""

    done: bool
    progress: float | None = None


class VideoProvider(Protocol):
    """Generates videos. Implementations: local.LocalRenderer, veo.VeoProvider."""

    name: str

    def check(self, request: VideoRequest) -> None:
        """Raise InvalidRequest when the model cannot do this combination (checked at submit)."""

    async def submit(self, request: VideoRequest) -> str:
        """Start a generation and return its operation name."""

    async def poll(self, operation: str) -> PollResult:
        """Where the operation is; raises a ProviderError when it failed."""

    async def download(self, operation: str, dest_dir: Path) -> list[VideoOutput]:
        """Write every finished video (MP4) of a done operation into `dest_dir`, in order."""
