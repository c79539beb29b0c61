"""GeminiImageProvider through the real google-genai client against the loopback Gemini fake.

The generateContent bodies the SDK sends are asserted in full: one call per
image, the image modality only, the image config and each image's seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common.config import ConfigError, Settings
from tasks.providers.base import ProviderError, QuotaExceeded, SafetyBlocked
from tasks.providers.capabilities import Unsupported
from tasks.providers.gemini_image import GeminiImageProvider
from tasks.providers.images import ImageRequest
from tests.fakes.gemini import FakeGemini, GeminiScript, png_for
from tests.fakes.veo import API_KEY
from tests.support.servers import AppThread


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[tuple[FakeGemini, str]]:
    """The Gemini fake on a loopback port, shared by this module's tests."""
    fake = FakeGemini()
    with AppThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def fake(gemini_server: tuple[FakeGemini, str]) -> FakeGemini:
    """The fake with a fresh script and no recorded requests."""
    gemini_server[0].reset()
    return gemini_server[0]


def provider_for(gemini_server: tuple[FakeGemini, str], **settings: Any) -> GeminiImageProvider:
    """A provider built from settings, pointed at the fake."""
    values: dict[str, Any] = {"gemini_api_key": API_KEY, "image_base_url": gemini_server[1]}
    values.update(settings)
    return GeminiImageProvider.from_settings(Settings(**values))


async def test_request_body_per_image(
    fake: FakeGemini, gemini_server: tuple[FakeGemini, str]
) -> None:
    """Two images are two generateContent calls with seeds 7 and 8, images only, the image config set."""
    provider = provider_for(gemini_server)
    request = ImageRequest(
        prompt="a lighthouse at dusk", aspect_ratio="16:9", number_of_images=2, seed=7
    )
    outputs = await provider.generate(request)
    assert [o.data for o in outputs] == [png_for(7), png_for(8)]
    assert [(o.mime_type, o.seed) for o in outputs] == [("image/png", 7), ("image/png", 8)]
    calls = fake.generations()
    assert [c.path for c in calls] == [
        "/v1beta1/publishers/google/models/gemini-2.5-flash-image:generateContent"
    ] * 2
    assert calls[0].headers["x-goog-api-key"] == API_KEY
    for call, seed in zip(calls, (7, 8), strict=True):
        assert call.body == {
            "contents": [{"parts": [{"text": "a lighthouse at dusk"}], "role": "user"}],
            "generationConfig": {
                "imageConfig": {"aspectRatio": "16:9", "imageSize": "1K"},
                "responseModalities": ["IMAGE"],
                "seed": seed,
            },
        }
    await provider.aclose()


async def test_no_seed_sends_none(fake: FakeGemini, gemini_server: tuple[FakeGemini, str]) -> None:
    """Without a seed the config carries none and the output's seed is unknown."""
    provider = provider_for(gemini_server, image_model="gemini-3-pro-image-preview")
    [out] = await provider.generate(ImageRequest(prompt="x", aspect_ratio="1:1", image_size="2K"))
    assert out.seed is None
    body = fake.generations()[0].body
    assert "seed" not in body["generationConfig"]
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "2K"}
    assert fake.generations()[0].path.endswith("/gemini-3-pro-image-preview:generateContent")
    await provider.aclose()


async def test_blocked_and_imageless_answers_and_errors(
    fake: FakeGemini, gemini_server: tuple[FakeGemini, str]
) -> None:
    """A blocked prompt is SafetyBlocked, an answer without an image a ProviderError, a 429 QuotaExceeded."""
    provider = provider_for(gemini_server)
    request = ImageRequest(prompt="x", aspect_ratio="16:9")
    fake.script = GeminiScript(outcome="blocked")
    with pytest.raises(SafetyBlocked, match="unsafe"):
        await provider.generate(request)
    fake.script = GeminiScript(outcome="text")
    with pytest.raises(ProviderError, match="without an image"):
        await provider.generate(request)
    fake.script = GeminiScript(statuses=[429])
    with pytest.raises(QuotaExceeded, match="429"):
        await provider.generate(request)
    await provider.aclose()


def test_limits_are_checked_and_unknown_models_refused() -> None:
    """An image size the model lacks is refused with its code; an unknown model stops start-up."""
    provider = GeminiImageProvider.from_settings(Settings(gemini_api_key="k"))
    with pytest.raises(Unsupported) as caught:
        provider.check(ImageRequest(prompt="x", aspect_ratio="16:9", image_size="4K"))
    assert caught.value.code == "unsupported_image_size"
    with pytest.raises(ConfigError, match=r"gemini-2\.5-flash-image"):
        GeminiImageProvider.from_settings(Settings(gemini_api_key="k", image_model="imagen-9"))
