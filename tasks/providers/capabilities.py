"""What each Veo model can make, checked at submit by the web process and again by the worker.

The table is the one place a model's limits are written down, so a request
the configured model cannot make is refused with a 422 and a code that says
why (`unsupported_duration`, …) before a job exists, instead of failing in
the worker minutes later. Sources: the Vertex AI model pages of each Veo
model (checked 2026-11); a model missing here is refused at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import CanvasflowError
from tasks.providers.base import InvalidRequest, VideoRequest


class Unsupported(InvalidRequest, CanvasflowError):
    """The configured model cannot make this combination; `code` (the 422's) says which part."""

    def __init__(self, code: str, message: str) -> None:
        CanvasflowError.__init__(self, code, message)


@dataclass(frozen=True)
class ModelCapabilities:
    """The parameters one model accepts."""

    resolutions: tuple[str, ...]
    durations_s: tuple[int, ...]
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    audio: bool = True
    image_to_video: bool = True
    image_mime_types: tuple[str, ...] = ("image/png", "image/jpeg")


_VEO_31 = ModelCapabilities(resolutions=("720p", "1080p"), durations_s=(4, 6, 8))

#: model id → capabilities; the first is the default (CANVASFLOW_VEO_MODEL)
MODELS: dict[str, ModelCapabilities] = {
    "veo-3.1-generate-001": _VEO_31,
    "veo-3.1-fast-generate-001": _VEO_31,
    "veo-3.1-lite-generate-001": _VEO_31,
    # silent, 720p only, 5 to 8 s; kept for projects still allowed to call it
    "veo-2.0-generate-001": ModelCapabilities(
        resolutions=("720p",), durations_s=(5, 6, 7, 8), audio=False
    ),
}


def capabilities_of(model: str) -> ModelCapabilities:
    """The model's row; KeyError names the models canvasflow knows."""
    try:
        return MODELS[model]
    except KeyError:
        known = ", ".join(MODELS)
        raise KeyError(f"unknown Veo model {model!r}: use one of {known}") from None


def _one_of(values: tuple[object, ...]) -> str:
    return ", ".join(str(v) for v in values)


def check_request(model: str, request: VideoRequest) -> None:
    """Raise Unsupported when `model` cannot make `request`; the first reason found wins."""
    caps = capabilities_of(model)
    if request.resolution not in caps.resolutions:
        raise Unsupported(
            "unsupported_resolution",
            f"{model} makes {_one_of(caps.resolutions)} videos, not {request.resolution}.",
        )
    if request.duration_s not in caps.durations_s:
        raise Unsupported(
            "unsupported_duration",
            f"{model} makes videos of {_one_of(caps.durations_s)} s, not {request.duration_s} s.",
        )
    if request.aspect_ratio not in caps.aspect_ratios:
        raise Unsupported(
            "unsupported_aspect_ratio",
            f"{model} makes {_one_of(caps.aspect_ratios)} videos, not {request.aspect_ratio}.",
        )
    if request.generate_audio and not caps.audio:
        raise Unsupported(
            "unsupported_audio", f"{model} makes silent videos: send generate_audio false."
        )
    # at submit the web process knows the image's type but has not read its bytes
    if request.image_mime_type is not None:
        if not caps.image_to_video:
            raise Unsupported(
                "unsupported_image", f"{model} makes videos from text only: drop image_url."
            )
        if request.image_mime_type not in caps.image_mime_types:
            raise Unsupported(
                "unsupported_image_type",
                f"{model} starts from {_one_of(caps.image_mime_types)} images, "
                f"not {request.image_mime_type}: upload the image as PNG or JPEG.",
            )
