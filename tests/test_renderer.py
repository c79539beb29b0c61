"""The local renderer: real H.264 MP4s of the requested size and length, drawn from the prompt."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import av
import msgspec
import pytest
from PIL import Image

from tasks.providers.base import InvalidRequest, OperationLost, VideoRequest
from tasks.providers.local import LocalRenderer, frame_size, render_video
from tests.support.waits import until

# encoding seconds of H.264 on a shared 2-core machine can outlast the suite's 60 s default
pytestmark = pytest.mark.timeout(300)


def probe(path: Path) -> tuple[str, int, int, int, float]:
    """Codec, width, height, frame count and duration (s) of an MP4."""
    with av.open(str(path), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert container.duration is not None
        return (
            stream.codec_context.name,
            stream.width,
            stream.height,
            frames,
            container.duration / av.time_base,
        )


def first_frame(path: Path) -> Image.Image:
    """The first decoded frame of an MP4 as an RGB image."""
    with av.open(str(path), mode="r") as container:
        frame = next(container.decode(video=0))
        image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
        return image


def test_frame_sizes() -> None:
    """720p is 1280x720 and 1080p 1920x1080, swapped for portrait 9:16."""
    assert frame_size("720p", "16:9") == (1280, 720)
    assert frame_size("720p", "9:16") == (720, 1280)
    assert frame_size("1080p", "16:9") == (1920, 1080)
    assert frame_size("1080p", "9:16") == (1080, 1920)


@pytest.mark.parametrize(
    ("resolution", "duration_s", "aspect_ratio", "size"),
    [("720p", 4, "16:9", (1280, 720)), ("720p", 6, "9:16", (720, 1280))],
)
def test_render_makes_h264_of_requested_size_and_length(
    tmp_path: Path, resolution: str, duration_s: int, aspect_ratio: str, size: tuple[int, int]
) -> None:
    """The clip is H.264 at the requested size, 24 fps for exactly the requested duration."""
    dest = tmp_path / "clip.mp4"
    request = VideoRequest(
        prompt="a paper boat on a rainy street",
        resolution=resolution,
        duration_s=duration_s,
        aspect_ratio=aspect_ratio,
        negative_prompt="people",
    )
    render_video(request, dest)
    codec, width, height, frames, duration = probe(dest)
    assert codec == "h264"
    assert (width, height) == size
    assert frames == duration_s * 24
    assert duration == pytest.approx(duration_s, abs=0.05)


def test_prompt_decides_the_look(tmp_path: Path) -> None:
    """Two prompts give different pictures; the same prompt and seed give the same one."""
    frames = []
    for i, prompt in enumerate(["a red fox", "a blue whale", "a red fox"]):
        dest = tmp_path / f"{i}.mp4"
        render_video(
            VideoRequest(
                prompt=prompt, resolution="720p", duration_s=4, aspect_ratio="16:9", seed=7
            ),
            dest,
        )
        frames.append(first_frame(dest).resize((64, 36)).tobytes())
    assert frames[0] == frames[2]
    assert frames[0] != frames[1]


def test_input_image_is_the_background(tmp_path: Path) -> None:
    """With an input image, the frames show that image (a solid green image gives green frames)."""
    buf = io.BytesIO()
    Image.new("RGB", (1600, 900), (0, 200, 0)).save(buf, "PNG")
    dest = tmp_path / "image.mp4"
    request = VideoRequest(
        prompt="grass", resolution="720p", duration_s=4, aspect_ratio="16:9", image=buf.getvalue()
    )
    render_video(request, dest)
    # the top left corner is outside the caption panel
    r, g, b = first_frame(dest).crop((100, 100, 300, 200)).resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert g > 150 and r < 60 and b < 60


def test_undecodable_image_is_invalid_request(tmp_path: Path) -> None:
    """An input image that does not decode is a permanent InvalidRequest, not a crash."""
    request = VideoRequest(
        prompt="x", resolution="720p", duration_s=4, aspect_ratio="16:9", image=b"not an image"
    )
    with pytest.raises(InvalidRequest):
        render_video(request, tmp_path / "x.mp4")


def test_check_refuses_what_it_cannot_make() -> None:
    """check() refuses out-of-range values (audio it makes: a tone)."""
    renderer = LocalRenderer()
    ok = VideoRequest(prompt="x", resolution="720p", duration_s=4, aspect_ratio="16:9")
    renderer.check(ok)
    renderer.check(
        VideoRequest(
            prompt="x", resolution="720p", duration_s=4, aspect_ratio="16:9", generate_audio=True
        )
    )
    for bad in (
        VideoRequest(prompt="x", resolution="4k", duration_s=4, aspect_ratio="16:9"),
        VideoRequest(prompt="x", resolution="720p", duration_s=5, aspect_ratio="16:9"),
        VideoRequest(prompt="x", resolution="720p", duration_s=4, aspect_ratio="1:1"),
    ):
        with pytest.raises(InvalidRequest):
            renderer.check(bad)


async def test_operation_reports_progress_and_downloads(tmp_path: Path) -> None:
    """submit() renders off the event loop; poll() climbs to done; download() hands over the MP4."""
    renderer = LocalRenderer(work_dir=tmp_path)
    request = VideoRequest(prompt="a kite", resolution="720p", duration_s=8, aspect_ratio="16:9")
    started = time.perf_counter()
    operation = await renderer.submit(request)
    progress: list[float] = []
    loop_lag = 0.0
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.05)
        # the event loop stays responsive while the render runs in a thread
        loop_lag = max(loop_lag, time.perf_counter() - before - 0.05)
        state = await renderer.poll(operation)
        if state.done:
            break
        assert state.progress is not None
        progress.append(state.progress)
    elapsed = time.perf_counter() - started
    assert progress == sorted(progress) and 0 < progress[-1] < 1
    assert loop_lag < 0.5
    out = tmp_path / "out"
    out.mkdir()
    [video] = await renderer.download(operation, out)
    assert video.path == out / "video-0.mp4" and video.duration_s == 8
    assert video.seed is not None  # a seed was picked, and is reported
    assert probe(video.path)[3] == 8 * 24
    print(f"render 8 s 720p: {elapsed:.2f} s")
    # downloaded operations are forgotten, like a provider's expired ones
    with pytest.raises(OperationLost):
        await renderer.poll(operation)


async def test_unknown_operation_is_lost(tmp_path: Path) -> None:
    """poll() and download() of an operation this process never started raise OperationLost."""
    renderer = LocalRenderer(work_dir=tmp_path)
    with pytest.raises(OperationLost):
        await renderer.poll("local-unknown")
    with pytest.raises(OperationLost):
        await renderer.download("local-unknown", tmp_path)


async def test_cancel_stops_the_render(tmp_path: Path) -> None:
    """A cancelled render stops within a frame or two and leaves no files behind."""
    renderer = LocalRenderer(work_dir=tmp_path)
    request = VideoRequest(prompt="a kite", resolution="720p", duration_s=8, aspect_ratio="16:9")
    operation = await renderer.submit(request)

    async def drawing() -> bool:
        return bool((await renderer.poll(operation)).progress)

    await until(drawing, "the render to draw its first frame")
    await renderer.cancel(operation)
    task = renderer.operations[operation].task if operation in renderer.operations else None
    if task is not None:
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
    await asyncio.sleep(0)
    assert operation not in renderer.operations
    assert not os.listdir(tmp_path)


def png(color: tuple[int, int, int], size: tuple[int, int] = (1280, 720)) -> bytes:
    """A PNG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def frames_of(path: Path) -> list[Image.Image]:
    """Every decoded frame of an MP4."""
    with av.open(str(path), mode="r") as container:
        return [f.to_image() for f in container.decode(video=0)]  # type: ignore[no-untyped-call]


def colour_at(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """The mean colour of a region."""
    pixel = image.crop(box).resize((1, 1)).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


async def render(renderer: LocalRenderer, request: VideoRequest, folder: Path) -> list[bytes]:
    """Submit, wait, download into `folder`; the bytes of each output."""
    operation = await renderer.submit(request)
    task = renderer.operations[operation].task
    assert task is not None
    await task  # the render itself: the condition `poll` reports
    assert (await renderer.poll(operation)).done
    await asyncio.to_thread(folder.mkdir)
    outputs = await renderer.download(operation, folder)
    return [await asyncio.to_thread(out.path.read_bytes) for out in outputs]


@pytest.mark.timeout(120)
async def test_same_seed_same_bytes_and_variants_differ(tmp_path: Path) -> None:
    """The same request twice gives byte-identical MP4s; each variant and another seed differ."""
    renderer = LocalRenderer(work_dir=tmp_path)
    request = VideoRequest(
        prompt="a kite over dunes",
        resolution="720p",
        duration_s=4,
        aspect_ratio="16:9",
        seed=3,
        number_of_videos=2,
        generate_audio=True,
        enhance_prompt=True,
        person_generation="dont_allow",
    )
    first = await render(renderer, request, tmp_path / "a")
    again = await render(renderer, request, tmp_path / "b")
    assert first == again
    assert first[0] != first[1]
    other = await render(renderer, msgspec.structs.replace(request, seed=4), tmp_path / "c")
    # variant 0 of seed 4 is variant 1 of seed 3: variants are seed + i, each re-makeable alone
    assert other[0] == first[1] and other[1] not in first
    plain = await render(
        renderer, msgspec.structs.replace(request, enhance_prompt=None), tmp_path / "d"
    )
    assert plain[0] != first[0]


def test_audio_track_when_asked(tmp_path: Path) -> None:
    """generate_audio adds an AAC track as long as the picture; without it the clip is silent."""
    base = VideoRequest(prompt="rain", resolution="720p", duration_s=4, aspect_ratio="16:9", seed=1)
    for audio in (False, True):
        dest = tmp_path / f"{audio}.mp4"
        render_video(msgspec.structs.replace(base, generate_audio=audio), dest)
        with av.open(str(dest)) as container:
            kinds = [s.type for s in container.streams]
            assert container.duration is not None
            assert container.duration / av.time_base == pytest.approx(4, abs=0.1)
        assert kinds == (["video", "audio"] if audio else ["video"])


def test_first_to_last_frame_morphs(tmp_path: Path) -> None:
    """With a first (red) and last (blue) frame, the clip starts red and ends blue."""
    dest = tmp_path / "morph.mp4"
    request = VideoRequest(
        prompt="dusk",
        resolution="720p",
        duration_s=8,
        aspect_ratio="16:9",
        image=png((220, 20, 20)),
        last_frame=png((20, 20, 220)),
    )
    render_video(request, dest)
    frames = frames_of(dest)
    corner = (100, 100, 300, 200)
    r0, _, b0 = colour_at(frames[0], corner)
    r1, _, b1 = colour_at(frames[-1], corner)
    assert r0 > 180 and b0 < 60
    assert b1 > 180 and r1 < 60
    r_mid, _, b_mid = colour_at(frames[len(frames) // 2], corner)
    assert 60 < r_mid < 180 and 60 < b_mid < 180


def test_reference_images_are_in_the_picture(tmp_path: Path) -> None:
    """Reference images appear as tiles along the top of every frame."""
    dest = tmp_path / "refs.mp4"
    request = VideoRequest(
        prompt="a product shot",
        resolution="720p",
        duration_s=8,
        aspect_ratio="16:9",
        reference_images=(png((0, 200, 0), (400, 400)), png((250, 250, 0), (400, 400))),
        reference_mime_types=("image/png", "image/png"),
    )
    render_video(request, dest)
    for frame in (frames_of(dest)[0], frames_of(dest)[-1]):
        # the first tile: green, the second: yellow (tiles are 180 px squares from x = 12)
        r, g, b = colour_at(frame, (40, 40, 150, 150))
        assert g > 150 and r < 60 and b < 60, (r, g, b)
        r, g, b = colour_at(frame, (250, 40, 350, 150))
        assert r > 200 and g > 200 and b < 60, (r, g, b)


def test_extension_continues_from_the_last_frame(tmp_path: Path) -> None:
    """An extension replays its source, then continues from the source's last frame, 7 s longer."""
    source = tmp_path / "source.mp4"
    render_video(
        VideoRequest(
            prompt="a red wall",
            resolution="720p",
            duration_s=4,
            aspect_ratio="16:9",
            image=png((220, 20, 20)),
        ),
        source,
    )
    dest = tmp_path / "extended.mp4"
    frames = render_video(
        VideoRequest(
            prompt="the wall turns",
            resolution="720p",
            duration_s=8,
            aspect_ratio="16:9",
            extend_video=source.read_bytes(),
            extend_resolution="720p",
            extend_duration_s=4,
        ),
        dest,
    )
    assert frames == (4 + 7) * 24
    assert probe(dest)[4] == pytest.approx(11, abs=0.05)
    old, new = frames_of(source), frames_of(dest)
    corner = (100, 100, 300, 200)
    assert colour_at(new[0], corner) == pytest.approx(colour_at(old[0], corner), abs=12)
    # the first new frame starts where the source ended
    last = colour_at(old[-1], corner)
    assert colour_at(new[len(old)], corner) == pytest.approx(last, abs=12)
    assert colour_at(new[-1], corner)[0] > 150
