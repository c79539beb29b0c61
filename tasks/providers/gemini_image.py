"""Gemini's native image generation through google-genai, in Vertex AI mode like Veo.

One image is one call, `client.aio.models.generate_content(model, contents=prompt,
config=GenerateContentConfig(response_modalities=["IMAGE"], image_config=
ImageConfig(aspect_ratio, image_size), seed))`, which the SDK sends as
`POST …/publishers/google/models/{model}:generateContent`; the image comes
back inline (`candidates[0].content.parts[].inline_data`: bytes and MIME
type). Several images are several calls, image i with seed + i, so each take
can be made again alone.
"""

from __future__ import annotations

import logging

from google import genai
from google.genai import errors, types

from common.config import ConfigError, Settings
from tasks.providers.base import ProviderError, SafetyBlocked, TransientProviderError
from tasks.providers.genai_client import make_client
from tasks.providers.images import (
    ImageOutput,
    ImageRequest,
    check_image_request,
    image_capabilities_of,
)
from tasks.providers.veo import _TRANSPORT_ERRORS, map_api_error

log = logging.getLogger(__name__)

#: finish reasons that mean the safety filters kept the image back
_BLOCKED = frozenset({"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"})
_SEEDS = 2**32


def _reason(value: object) -> str:
    return str(getattr(value, "value", value) or "")


def image_of(response: types.GenerateContentResponse) -> tuple[bytes, str]:
    """The first inline image of a response; raises why there is none."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        detail = feedback.block_reason_message or _reason(feedback.block_reason)
        raise SafetyBlocked(detail)
    for candidate in response.candidates or []:
        for part in (candidate.content.parts if candidate.content else None) or []:
            blob = part.inline_data
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                return blob.data, blob.mime_type or "image/png"
        finish = _reason(candidate.finish_reason)
        if finish in _BLOCKED:
            raise SafetyBlocked(candidate.finish_message or finish)
    raise ProviderError("Gemini answered without an image")


class GeminiImageProvider:
    """Makes images with a Gemini image model; see the module docstring for the call."""

    name = "gemini"

    def __init__(self, client: genai.Client, model: str) -> None:
        image_capabilities_of(model)
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> GeminiImageProvider:
        """A provider for the configured project (or API key) and image model."""
        try:
            image_capabilities_of(settings.image_model)
        except KeyError as exc:
            raise ConfigError(f"CANVASFLOW_IMAGE_MODEL: {exc.args[0]}") from None
        return cls(make_client(settings, settings.image_base_url), settings.image_model)

    def check(self, request: ImageRequest) -> None:
        """Raise Unsupported for what the model cannot make."""
        check_image_request(self.model, request)

    def config_for(self, request: ImageRequest, seed: int | None) -> types.GenerateContentConfig:
        """Images only, at the request's aspect ratio and size, with this image's seed."""
        return types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(
                aspect_ratio=request.aspect_ratio, image_size=request.image_size
            ),
            seed=seed,
        )

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        """One generate_content call per image; errors mapped like Veo's."""
        self.check(request)
        outputs = []
        for i in range(request.number_of_images):
            seed = None if request.seed is None else (request.seed + i) % _SEEDS
            try:
                response = await self.client.aio.models.generate_content(
                    model=self.model, contents=request.prompt, config=self.config_for(request, seed)
                )
            except errors.APIError as exc:
                raise map_api_error(exc, "generate") from exc
            except _TRANSPORT_ERRORS as exc:
                raise TransientProviderError(f"generate: {type(exc).__name__}: {exc}") from exc
            data, mime_type = image_of(response)
            outputs.append(ImageOutput(data=data, mime_type=mime_type, seed=seed))
        return outputs

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections (worker shutdown)."""
        await self.client.aio.aclose()
