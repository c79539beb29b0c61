"""The provider interface: submit a generation, poll it, download the result.

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
    """Everything a provider needs to generate one video."""

    prompt: str
    resolution: str  # "720p" | "1080p"
    duration_s: int  # 4 | 6 | 8
    aspect_ratio: str  # "16:9" | "9:16"
    negative_prompt: str | None = None
    image: bytes | None = None
    image_mime_type: str | None = None
    seed: int | None = None
    generate_audio: bool = False


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

    async def download(self, operation: str, dest: Path) -> None:
        """Write the finished video (MP4) of a done operation to `dest`."""
