"""What each Veo model can make, checked at submit by the web process and again by the worker.

The table is the one place a model's limits are written down, so a request
the configured model cannot make is refused with a 422 and a code that says
why (`unsupported_duration`, …) before a job exists, instead of failing in
the worker minutes later. Sources: the Vertex AI model pages of each Veo
model (checked 2026-11) and the SDK's converters (seed and generate_audio
exist on Vertex AI only, where canvasflow always runs Veo); a model missing
here is refused at start-up. The local renderer checks requests against the
same row (the configured model), so what works offline works in production.

Each impossible combination has its own code: `last_frame_needs_first_frame`,
`interpolation_needs_8s`, `references_need_16_9`, `references_need_8s`,
`resolution_needs_8s`, `extend_with_images`, `extend_source_1080p`,
`extension_720p_only`, `extension_needs_8s`, and `unsupported_*` for what a
model lacks altogether.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import CanvasflowError
from common.protocol.ports import MAX_REFERENCES
from tasks.providers.base import InvalidRequest, VideoRequest


class Unsupported(InvalidRequest, CanvasflowError):
    """The configured model cannot make this combination; `code` (the 422's) says which part."""

    def __init__(self, code: str, message: str) -> None:
        CanvasflowError.__init__(self, code, message)


@dataclass(frozen=True)
class ModelCapabilities:
    """The parameters one model accepts (on Vertex AI, where canvasflow runs Veo)."""

    resolutions: tuple[str, ...]
    durations_s: tuple[int, ...]
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    audio: bool = True
    image_to_video: bool = True
    image_mime_types: tuple[str, ...] = ("image/png", "image/jpeg")
    #: videos one request may make (Vertex AI: up to 4; the Gemini API makes 1)
    max_videos: int = 4
    #: GenerateVideosConfig.person_generation values (the SDK documents these two)
    person_generation: tuple[str, ...] = ("dont_allow", "allow_adult")
    #: first and last frame (interpolation)
    last_frame: bool = True
    #: asset reference images, at most MAX_REFERENCES, 16:9 only
    reference_images: bool = True
    #: continuing a clip of its own (720p only, adds EXTENSION_ADDED_S)
    extension: bool = True
    #: 1080p, references, interpolation and extension are made only at this length
    long_only_s: int | None = 8


_VEO_31 = ModelCapabilities(resolutions=("720p", "1080p"), durations_s=(4, 6, 8))

#: model id → capabilities; the first is the default (CANVASFLOW_VEO_MODEL)
MODELS: dict[str, ModelCapabilities] = {
    "veo-3.1-generate-001": _VEO_31,
    "veo-3.1-fast-generate-001": _VEO_31,
    # Lite's pages list neither reference images nor extension: refused until checked
    "veo-3.1-lite-generate-001": ModelCapabilities(
        resolutions=("720p", "1080p"),
        durations_s=(4, 6, 8),
        reference_images=False,
        extension=False,
    ),
    # silent, 720p only, 5 to 8 s; kept for projects still allowed to call it
    "veo-2.0-generate-001": ModelCapabilities(
        resolutions=("720p",),
        durations_s=(5, 6, 7, 8),
        audio=False,
        last_frame=False,
        reference_images=False,
        extension=False,
        long_only_s=None,
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
    _check_basics(model, caps, request)
    _check_images(model, caps, request)
    _check_modes(model, caps, request)


def _check_basics(model: str, caps: ModelCapabilities, request: VideoRequest) -> None:
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
    if not 1 <= request.number_of_videos <= caps.max_videos:
        raise Unsupported(
            "unsupported_number_of_videos",
            f"{model} makes 1 to {caps.max_videos} videos a request, "
            f"not {request.number_of_videos}.",
        )
    if request.person_generation is not None and (
        request.person_generation not in caps.person_generation
    ):
        raise Unsupported(
            "unsupported_person_generation",
            f"{model} takes person_generation {_one_of(caps.person_generation)}, "
            f"not {request.person_generation}.",
        )


def _check_images(model: str, caps: ModelCapabilities, request: VideoRequest) -> None:
    # at submit the web process knows the images' types but has not read their bytes
    types = [request.image_mime_type, request.last_frame_mime_type, *request.reference_mime_types]
    if request.image_mime_type is not None and not caps.image_to_video:
        raise Unsupported(
            "unsupported_image", f"{model} makes videos from text only: drop image_url."
        )
    for mime_type in types:
        if mime_type is not None and mime_type not in caps.image_mime_types:
            raise Unsupported(
                "unsupported_image_type",
                f"{model} starts from {_one_of(caps.image_mime_types)} images, "
                f"not {mime_type}: upload the image as PNG or JPEG.",
            )


def _needs_long(caps: ModelCapabilities, request: VideoRequest, code: str, what: str) -> None:
    if caps.long_only_s is not None and request.duration_s != caps.long_only_s:
        raise Unsupported(
            code,
            f"{what} is made only as a {caps.long_only_s} s clip: send duration "
            f"{caps.long_only_s}, not {request.duration_s}.",
        )


def _check_modes(model: str, caps: ModelCapabilities, request: VideoRequest) -> None:
    if request.resolution == "1080p":
        _needs_long(caps, request, "resolution_needs_8s", "1080p")
    if request.last_frame_mime_type is not None:
        if request.image_mime_type is None:
            raise Unsupported(
                "last_frame_needs_first_frame",
                "A last frame needs a first frame to morph from: connect first_frame too "
                "(or send image_url).",
            )
        if not caps.last_frame:
            raise Unsupported("unsupported_last_frame", f"{model} takes no last frame.")
        _needs_long(caps, request, "interpolation_needs_8s", "A first-to-last-frame clip")
    if request.reference_mime_types:
        if not caps.reference_images:
            raise Unsupported("unsupported_references", f"{model} takes no reference images.")
        if len(request.reference_mime_types) > MAX_REFERENCES:
            raise Unsupported(
                "too_many_references", f"At most {MAX_REFERENCES} reference images a video."
            )
        if request.aspect_ratio != "16:9":
            raise Unsupported(
                "references_need_16_9",
                f"Reference images make 16:9 videos only, not {request.aspect_ratio}.",
            )
        _needs_long(caps, request, "references_need_8s", "A video from reference images")
    if request.extends:
        _check_extension(model, caps, request)


def _check_extension(model: str, caps: ModelCapabilities, request: VideoRequest) -> None:
    if not caps.extension:
        raise Unsupported("unsupported_extension", f"{model} does not extend clips.")
    if request.image_mime_type or request.last_frame_mime_type or request.reference_mime_types:
        # GenerateVideosSource takes an image or a video, never both
        raise Unsupported(
            "extend_with_images",
            "An extension continues its clip: it takes no first frame, last frame or references.",
        )
    if request.extend_resolution == "1080p":
        raise Unsupported(
            "extend_source_1080p", "Only 720p clips can be extended; this one is 1080p."
        )
    if request.resolution != "720p":
        raise Unsupported(
            "extension_720p_only", f"Extensions are made at 720p, not {request.resolution}."
        )
    _needs_long(caps, request, "extension_needs_8s", "An extension")
