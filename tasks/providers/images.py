"""The image provider interface, and what each image model can make.

Image generation answers in one call (no operation to poll): `generate`
returns the images themselves. Implementations: local_image.LocalImageRenderer
(offline), gemini_image.GeminiImageProvider (Gemini's native image models
through google-genai `generate_content`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

from tasks.providers.capabilities import Unsupported

#: most images one job makes (each a take)
MAX_IMAGES = 4


class ImageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a provider needs to make one job's images."""

    prompt: str
    aspect_ratio: str
    number_of_images: int = 1
    seed: int | None = None
    #: "1K" | "2K" | "4K": the long side, about 1024, 2048 or 4096 pixels
    image_size: str = "1K"


class ImageOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One finished image."""

    data: bytes
    mime_type: str
    #: the seed that made it, when known
    seed: int | None = None


class ImageProvider(Protocol):
    """Makes images."""

    name: str

    def check(self, request: ImageRequest) -> None:
        """Raise Unsupported when the model cannot do this (checked at submit)."""

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        """Make the request's images, in order; raises a ProviderError when it cannot."""


@dataclass(frozen=True)
class ImageModelCapabilities:
    """What one image model accepts."""

    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str, ...]


#: the aspect ratios ImageConfig documents for Gemini's image models
_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")

#: model id → capabilities; the first is the default (CANVASFLOW_IMAGE_MODEL)
IMAGE_MODELS: dict[str, ImageModelCapabilities] = {
    "gemini-2.5-flash-image": ImageModelCapabilities(aspect_ratios=_RATIOS, image_sizes=("1K",)),
    "gemini-3-pro-image-preview": ImageModelCapabilities(
        aspect_ratios=_RATIOS, image_sizes=("1K", "2K", "4K")
    ),
}


def image_capabilities_of(model: str) -> ImageModelCapabilities:
    """The model's row; KeyError names the models canvasflow knows."""
    try:
        return IMAGE_MODELS[model]
    except KeyError:
        known = ", ".join(IMAGE_MODELS)
        raise KeyError(f"unknown image model {model!r}: use one of {known}") from None


def check_image_request(model: str, request: ImageRequest) -> None:
    """Raise Unsupported when `model` cannot make `request`."""
    caps = image_capabilities_of(model)
    if request.aspect_ratio not in caps.aspect_ratios:
        raise Unsupported(
            "unsupported_aspect_ratio",
            f"{model} makes {', '.join(caps.aspect_ratios)} images, not {request.aspect_ratio}.",
        )
    if request.image_size not in caps.image_sizes:
        raise Unsupported(
            "unsupported_image_size",
            f"{model} makes {', '.join(caps.image_sizes)} images, not {request.image_size}.",
        )
    if not 1 <= request.number_of_images <= MAX_IMAGES:
        raise Unsupported(
            "unsupported_number_of_images",
            f"1 to {MAX_IMAGES} images a request, not {request.number_of_images}.",
        )
