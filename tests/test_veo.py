"""VeoProvider through the real google-genai client against the loopback Veo fake.

The request bodies the SDK sends are asserted in full, so a change in how a
VideoRequest maps onto GenerateVideosConfig shows up here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from common.config import ConfigError, Settings
from tasks.providers.base import (
    InvalidRequest,
    OperationLost,
    ProviderError,
    QuotaExceeded,
    SafetyBlocked,
    TransientProviderError,
    VideoRequest,
)
from tasks.providers.capabilities import MODELS, Unsupported, check_request
from tasks.providers.veo import VeoProvider
from tests.fakes.gcs import FakeGcs
from tests.fakes.veo import API_KEY, VIDEO, FakeVeo, VeoScript
from tests.support.servers import AppThread


@pytest.fixture(scope="module")
def veo_server() -> Iterator[tuple[FakeVeo, str]]:
    """The Veo fake on a loopback port, shared by this module's tests."""
    fake = FakeVeo()
    with AppThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def fake(veo_server: tuple[FakeVeo, str]) -> FakeVeo:
    """The fake with a fresh default script and no recorded requests."""
    veo_server[0].reset()
    return veo_server[0]


def provider_for(veo_server: tuple[FakeVeo, str], **settings: Any) -> VeoProvider:
    """A VeoProvider built from settings, pointed at the fake."""
    values: dict[str, Any] = {
        "gemini_api_key": API_KEY,
        "veo_base_url": veo_server[1],
        "veo_poll_interval_s": 0.01,
    }
    values.update(settings)
    return VeoProvider.from_settings(Settings(**values))


def request(**changes: Any) -> VideoRequest:
    """A valid request for the default model."""
    values: dict[str, Any] = {
        "prompt": "a paper boat sails down a rainy street",
        "resolution": "720p",
        "duration_s": 4,
        "aspect_ratio": "16:9",
    }
    values.update(changes)
    return VideoRequest(**values)


async def run_to_end(provider: VeoProvider, operation: str, dest: Path) -> int:
    """Poll until done, then download the first video to `dest`; returns the number of polls."""
    polls = 1
    while not (await provider.poll(operation)).done:
        polls += 1
    folder = dest.parent / f"{dest.name}.d"
    folder.mkdir()
    outputs = await provider.download(operation, folder)
    outputs[0].path.rename(dest)
    return polls


async def test_project_mode_uses_application_default_credentials(
    veo_server: tuple[FakeVeo, str],
    fake: FakeVeo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CANVASFLOW_VEO_PROJECT: a Bearer token from ADC (a service-account key) and the project path.

    The key's token_uri is the loopback OAuth fake, so google-auth makes the real
    JWT grant; the Veo fake accepts only the token that grant issued.
    """
    oauth = FakeGcs()
    with AppThread(oauth.app) as server:
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(oauth.service_account_file(tmp_path, server.url))
        )
        fake.bearer_tokens = oauth.tokens
        provider = provider_for(
            veo_server, gemini_api_key=None, veo_project="fake-project", veo_location="europe-west4"
        )
        operation = await provider.submit(request())
        await run_to_end(provider, operation, tmp_path / "out.mp4")
    [submit] = fake.submits()
    model = provider.model
    assert submit.path.endswith(
        f"/projects/fake-project/locations/europe-west4/publishers/google/models/{model}"
        ":predictLongRunning"
    ), submit.path
    assert "x-goog-api-key" not in submit.headers
    assert submit.headers["authorization"].removeprefix("Bearer ") in oauth.tokens
    assert fake.polls() and all(
        p.headers["authorization"] == submit.headers["authorization"] for p in fake.polls()
    )
    assert (tmp_path / "out.mp4").read_bytes() == VIDEO


async def test_text_to_video_request_body(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str], tmp_path: Path
) -> None:
    """Every choice of a text-to-video request lands in the predictLongRunning body, nothing else."""
    provider = provider_for(veo_server)
    req = request(
        resolution="1080p",
        duration_s=8,
        aspect_ratio="9:16",
        negative_prompt="text, watermark",
        seed=42,
        generate_audio=True,
    )
    operation = await provider.submit(req)
    assert await run_to_end(provider, operation, tmp_path / "v.mp4") == 2
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO
    submit = fake.submits()[0]
    assert (
        submit.path == "/v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning"
    )
    assert submit.headers["x-goog-api-key"] == API_KEY
    assert submit.body == {
        "instances": [{"prompt": "a paper boat sails down a rainy street"}],
        "parameters": {
            "sampleCount": 1,
            "durationSeconds": 8,
            "seed": 42,
            "aspectRatio": "9:16",
            "resolution": "1080p",
            "negativePrompt": "text, watermark",
            "generateAudio": True,
        },
    }
    polls = fake.polls()
    assert [p.body for p in polls] == [{"operationName": operation}] * 2
    resource = operation.rpartition("/operations/")[0]
    assert {p.path for p in polls} == {f"/v1beta1/{resource}:fetchPredictOperation"}
    await provider.aclose()


async def test_image_to_video_sends_the_image_inline(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """The image bytes (read from storage by the worker) go inline with their MIME type."""
    provider = provider_for(veo_server)
    image = b"\x89PNG\r\n\x1a\n" + bytes(100)
    await provider.submit(request(image=image, image_mime_type="image/png"))
    assert fake.submits()[0].body["instances"] == [
        {
            "prompt": "a paper boat sails down a rainy street",
            "image": {
                "bytesBase64Encoded": base64.b64encode(image).decode(),
                "mimeType": "image/png",
            },
        }
    ]
    await provider.aclose()


async def test_silent_model_gets_no_audio_field(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """A model without audio is not sent generateAudio at all (Veo 2 refuses the field)."""
    provider = provider_for(veo_server, veo_model="veo-2.0-generate-001")
    await provider.submit(request(duration_s=5))
    submit = fake.submits()[0]
    assert submit.path.endswith("/models/veo-2.0-generate-001:predictLongRunning")
    assert submit.body["parameters"] == {
        "sampleCount": 1,
        "durationSeconds": 5,
        "aspectRatio": "16:9",
        "resolution": "720p",
    }
    await provider.aclose()


async def test_safety_block_raises_with_the_api_reason(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """A result filtered by RAI raises SafetyBlocked carrying the reasons the API gave."""
    fake.script = VeoScript(outcome="safety", safety_reasons=["child safety", "violence"])
    provider = provider_for(veo_server)
    operation = await provider.submit(request())
    with pytest.raises(SafetyBlocked, match=r"^child safety; violence$"):
        while not (await provider.poll(operation)).done:
            pass
    await provider.aclose()


async def test_operation_error_raises_its_message(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """An operation done with an error raises a permanent ProviderError with that message."""
    fake.script = VeoScript(outcome="error", error={"code": 3, "message": "bad image"})
    provider = provider_for(veo_server)
    operation = await provider.submit(request())
    with pytest.raises(ProviderError, match=r"^bad image$") as caught:
        while not (await provider.poll(operation)).done:
            pass
    assert not caught.value.transient
    await provider.aclose()


async def test_http_errors_map_to_transient_and_permanent(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """429 at submit is QuotaExceeded, 503 TransientProviderError, 400 InvalidRequest; each started nothing."""
    fake.script = VeoScript(submit_statuses=[429, 503, 400])
    provider = provider_for(veo_server)
    with pytest.raises(QuotaExceeded, match="429 RESOURCE_EXHAUSTED"):
        await provider.submit(request())
    with pytest.raises(TransientProviderError, match="503 UNAVAILABLE") as caught:
        await provider.submit(request())
    assert not isinstance(caught.value, QuotaExceeded)
    with pytest.raises(InvalidRequest, match="400 INVALID_ARGUMENT"):
        await provider.submit(request())
    assert fake.generations_started == 0
    await provider.aclose()


async def test_poll_retries_5xx_in_place(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str], tmp_path: Path
) -> None:
    """A 503 and a 429 while polling are retried by the SDK inside one poll; past its tries they are transient."""
    fake.script = VeoScript(poll_statuses=[503, 429], polls_until_done=0)
    provider = provider_for(veo_server)
    provider.poll_retry = types.HttpRetryOptions(attempts=3, initial_delay=0.05, jitter=0)
    operation = await provider.submit(request())
    assert (await provider.poll(operation)).done
    assert len(fake.polls()) == 3
    provider.poll_retry = types.HttpRetryOptions(attempts=1)
    fake.script.poll_statuses = [503]
    with pytest.raises(TransientProviderError, match="503"):
        await provider.poll(operation)
    await provider.download(operation, tmp_path)
    # the finished operation was kept: download fetched nothing more
    assert len(fake.polls()) == 4
    await provider.aclose()


async def test_resume_in_a_new_provider(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str], tmp_path: Path
) -> None:
    """A second provider (another worker) polls and downloads an operation by its name alone."""
    fake.script = VeoScript(polls_until_done=1)
    first = provider_for(veo_server)
    operation = await first.submit(request())
    assert not (await first.poll(operation)).done
    await first.aclose()
    second = provider_for(veo_server)
    assert (await second.poll(operation)).done
    [video] = await second.download(operation, tmp_path)
    assert video.path.read_bytes() == VIDEO
    assert fake.generations_started == 1
    await second.aclose()


async def test_unknown_operation_is_lost(fake: FakeVeo, veo_server: tuple[FakeVeo, str]) -> None:
    """A 404 for the operation raises OperationLost, so the worker submits again."""
    provider = provider_for(veo_server)
    with pytest.raises(OperationLost):
        await provider.poll("projects/fake/locations/x/publishers/google/models/m/operations/gone")
    await provider.aclose()


def test_poll_backoff_grows_to_a_cap(veo_server: tuple[FakeVeo, str]) -> None:
    """The wait between polls grows 1.5x per poll from the configured first interval, capped at 60 s."""
    provider = provider_for(veo_server, veo_poll_interval_s=10.0)
    delays = [provider.next_delay_s("op") for _ in range(8)]
    assert delays[:4] == [10.0, 15.0, 22.5, 33.75]
    assert delays[-1] == 60.0
    assert provider.next_delay_s("other") == 10.0


def test_unknown_model_is_a_config_error() -> None:
    """A model missing from the capability table stops start-up with the known models named."""
    with pytest.raises(ConfigError, match=r"veo-3\.1-generate-001"):
        VeoProvider.from_settings(Settings(gemini_api_key="k", veo_model="veo-9"))


@pytest.mark.parametrize(
    ("model", "changes", "code"),
    [
        (
            "veo-2.0-generate-001",
            {"resolution": "1080p", "duration_s": 6},
            "unsupported_resolution",
        ),
        ("veo-2.0-generate-001", {"duration_s": 4}, "unsupported_duration"),
        ("veo-2.0-generate-001", {"duration_s": 8, "generate_audio": True}, "unsupported_audio"),
        ("veo-3.1-generate-001", {"image_mime_type": "image/webp"}, "unsupported_image_type"),
    ],
)
def test_capability_refusals(model: str, changes: dict[str, Any], code: str) -> None:
    """Each unsupported combination is refused with the code that names the reason."""
    assert model in MODELS
    with pytest.raises(Unsupported) as caught:
        check_request(model, request(**changes))
    assert caught.value.code == code


async def test_variants_seed_and_knobs_request_body(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str], tmp_path: Path
) -> None:
    """number_of_videos, seed, enhance_prompt, generate_audio and person_generation land in the body; 4 videos come back."""
    provider = provider_for(veo_server)
    req = request(
        number_of_videos=4,
        seed=7,
        enhance_prompt=False,
        generate_audio=True,
        person_generation="allow_adult",
    )
    operation = await provider.submit(req)
    while not (await provider.poll(operation)).done:
        pass
    outputs = await provider.download(operation, tmp_path)
    assert [o.path.name for o in outputs] == [f"video-{i}.mp4" for i in range(4)]
    assert len({o.path.read_bytes() for o in outputs}) == 4
    assert fake.submits()[0].body == {
        "instances": [{"prompt": "a paper boat sails down a rainy street"}],
        "parameters": {
            "sampleCount": 4,
            "durationSeconds": 4,
            "seed": 7,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "personGeneration": "allow_adult",
            "enhancePrompt": False,
            "generateAudio": True,
        },
    }
    await provider.aclose()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_first_and_last_frame_request_body(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """Interpolation sends the first frame as `image` and the last as `lastFrame` of the instance."""
    provider = provider_for(veo_server)
    first, last = b"\x89PNG first", b"\xff\xd8 last"
    await provider.submit(
        request(
            duration_s=8,
            image=first,
            image_mime_type="image/png",
            last_frame=last,
            last_frame_mime_type="image/jpeg",
        )
    )
    assert fake.submits()[0].body["instances"] == [
        {
            "prompt": "a paper boat sails down a rainy street",
            "image": {"bytesBase64Encoded": _b64(first), "mimeType": "image/png"},
            "lastFrame": {"bytesBase64Encoded": _b64(last), "mimeType": "image/jpeg"},
        }
    ]
    await provider.aclose()


async def test_reference_images_request_body(
    fake: FakeVeo, veo_server: tuple[FakeVeo, str]
) -> None:
    """Reference images go as `referenceImages` of the instance, each an ASSET with its image inline."""
    provider = provider_for(veo_server)
    refs = (b"\x89PNG one", b"\x89PNG two")
    await provider.submit(
        request(duration_s=8, reference_images=refs, reference_mime_types=("image/png",) * 2)
    )
    body = fake.submits()[0].body
    assert body["instances"] == [
        {
            "prompt": "a paper boat sails down a rainy street",
            "referenceImages": [
                {
                    "image": {"bytesBase64Encoded": _b64(r), "mimeType": "image/png"},
                    "referenceType": "ASSET",
                }
                for r in refs
            ],
        }
    ]
    assert body["parameters"]["durationSeconds"] == 8
    await provider.aclose()


async def test_extension_request_body(fake: FakeVeo, veo_server: tuple[FakeVeo, str]) -> None:
    """An extension sends the source clip as the instance's `video`, inline, and no image."""
    provider = provider_for(veo_server)
    clip = VIDEO + b"source"
    await provider.submit(
        request(duration_s=8, extend_video=clip, extend_resolution="720p", extend_duration_s=4)
    )
    assert fake.submits()[0].body == {
        "instances": [
            {
                "prompt": "a paper boat sails down a rainy street",
                "video": {"bytesBase64Encoded": _b64(clip), "mimeType": "video/mp4"},
            }
        ],
        "parameters": {
            "sampleCount": 1,
            "durationSeconds": 8,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "generateAudio": False,
        },
    }
    await provider.aclose()


_PNG = {"image_mime_type": "image/png"}
_EXT = {"extend_resolution": "720p", "extend_duration_s": 8}


@pytest.mark.parametrize(
    ("model", "changes", "code"),
    [
        ("veo-3.1-generate-001", {"number_of_videos": 5}, "unsupported_number_of_videos"),
        (
            "veo-3.1-generate-001",
            {"person_generation": "allow_all"},
            "unsupported_person_generation",
        ),
        (
            "veo-3.1-generate-001",
            {"duration_s": 8, "last_frame_mime_type": "image/png"},
            "last_frame_needs_first_frame",
        ),
        (
            "veo-3.1-generate-001",
            {**_PNG, "last_frame_mime_type": "image/png"},
            "interpolation_needs_8s",
        ),
        (
            "veo-3.1-generate-001",
            {"duration_s": 8, "aspect_ratio": "9:16", "reference_mime_types": ("image/png",)},
            "references_need_16_9",
        ),
        ("veo-3.1-generate-001", {"reference_mime_types": ("image/png",)}, "references_need_8s"),
        (
            "veo-3.1-generate-001",
            {"duration_s": 8, "reference_mime_types": ("image/png",) * 4},
            "too_many_references",
        ),
        ("veo-3.1-generate-001", {"resolution": "1080p", "duration_s": 6}, "resolution_needs_8s"),
        ("veo-3.1-generate-001", {**_EXT, **_PNG, "duration_s": 8}, "extend_with_images"),
        (
            "veo-3.1-generate-001",
            {**_EXT, "extend_resolution": "1080p", "duration_s": 8},
            "extend_source_1080p",
        ),
        (
            "veo-3.1-generate-001",
            {**_EXT, "resolution": "1080p", "duration_s": 8},
            "extension_720p_only",
        ),
        ("veo-3.1-generate-001", _EXT, "extension_needs_8s"),
        ("veo-3.1-lite-generate-001", {**_EXT, "duration_s": 8}, "unsupported_extension"),
        (
            "veo-3.1-lite-generate-001",
            {"duration_s": 8, "reference_mime_types": ("image/png",)},
            "unsupported_references",
        ),
        (
            "veo-2.0-generate-001",
            {**_PNG, "duration_s": 8, "last_frame_mime_type": "image/png"},
            "unsupported_last_frame",
        ),
        (
            "veo-3.1-generate-001",
            {"duration_s": 8, "reference_mime_types": ("image/gif",)},
            "unsupported_image_type",
        ),
    ],
)
def test_impossible_combinations_are_refused_with_their_code(
    model: str, changes: dict[str, Any], code: str
) -> None:
    """Each combination the model cannot make is refused with its own code, and a valid neighbour passes."""
    with pytest.raises(Unsupported) as caught:
        check_request(model, request(**changes))
    assert caught.value.code == code, caught.value


def test_every_mode_that_fits_passes() -> None:
    """The modes as the model can make them (8 s, 720p, 16:9 for references) pass the check."""
    model = "veo-3.1-generate-001"
    check_request(model, request(**_PNG, duration_s=8, last_frame_mime_type="image/png"))
    check_request(model, request(duration_s=8, reference_mime_types=("image/png",) * 3))
    check_request(model, request(**_EXT, duration_s=8))
    check_request(model, request(resolution="1080p", duration_s=8, number_of_videos=4))
