"""The local renderer: a real H.264 MP4 drawn on the CPU from the prompt (and the image).

The offline default when GEMINI_API_KEY is unset. It behaves like a remote
provider: `submit` starts a render and returns an operation name, `poll`
reports frames done / total, `download` hands over the file. Operations live
in this process only, so a worker that takes over a job from a dead one gets
OperationLost and submits again, exactly the path a provider that forgot an
operation takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from common.config import MAX_STORED_IMAGE_PIXELS
from tasks.providers.base import (
    InvalidRequest,
    OperationLost,
    PollResult,
    ProviderError,
    VideoRequest,
)

log = logging.getLogger(__name__)

FPS = 24
RESOLUTIONS = ("720p", "1080p")
DURATIONS_S = (4, 6, 8)
ASPECT_RATIOS = ("16:9", "9:16")
_LANDSCAPE = {"720p": (1280, 720), "1080p": (1920, 1080)}
#: how far the input image zooms in over the whole clip
_ZOOM = 0.12
_MAX_PROMPT_LINES = 6
_WHITE = (255, 255, 255)


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height of a clip: 720p is 1280x720, 1080p 1920x1080, swapped for 9:16."""
    width, height = _LANDSCAPE[resolution]
    return (height, width) if aspect_ratio == "9:16" else (width, height)


class RenderStopped(Exception):
    """The render was abandoned (nobody polls it any more) and stopped early."""


def _palette(request: VideoRequest) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two colours that depend only on the prompt and the seed, so a rerun looks the same."""
    digest = hashlib.sha256(f"{request.prompt}\n{request.seed}".encode()).digest()
    dark = (digest[0] // 4, digest[1] // 4, 40 + digest[2] // 4)
    light = (96 + digest[3] // 2, 64 + digest[4] // 2, 96 + digest[5] // 2)
    return dark, light


_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _wrap(text: str, font: _Font, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap to `max_width` pixels, cut to `max_lines` with an ellipsis."""
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        # a single word wider than the panel is split so it cannot overflow
        while font.getlength(word) > max_width and len(word) > 1:
            cut = max(1, int(len(word) * max_width / font.getlength(word)) - 1)
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= max_width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + " …") > max_width:
            last = last.rsplit(" ", 1)[0] if " " in last else last[:-1]
        lines = [*lines[: max_lines - 1], f"{last} …"]
    return lines


def _caption(request: VideoRequest, width: int, height: int) -> Image.Image:
    """The prompt (and negative prompt) on a translucent panel, drawn once per clip."""
    short = min(width, height)
    font_px, small_px = max(18, short // 18), max(12, short // 36)
    font = ImageFont.load_default(size=font_px)
    small = ImageFont.load_default(size=small_px)
    max_text = width * 0.84
    lines = _wrap(request.prompt, font, max_text, _MAX_PROMPT_LINES)
    extra = []
    if request.negative_prompt:
        extra = _wrap(f"avoid: {request.negative_prompt}", small, max_text, 2)
    line_h = int(font_px * 1.25)
    small_h = int(small_px * 1.3)
    pad = short // 30
    panel_h = pad * 2 + line_h * len(lines) + small_h * len(extra)
    panel = Image.new("RGBA", (int(width * 0.9), panel_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(panel)
    draw.rounded_rectangle((0, 0, panel.width - 1, panel_h - 1), radius=pad, fill=(0, 0, 0, 150))
    y = pad
    for line in lines:
        draw.text((pad, y), line, font=font, fill=(255, 255, 255, 255))
        y += line_h
    for line in extra:
        draw.text((pad, y), line, font=small, fill=(220, 220, 220, 230))
        y += small_h
    return panel


#: a panorama wider than this many frames shows its middle as the camera pans across it
_MAX_PAN_FRAMES = 1.5
#: images stored before uploads were downscaled may be up to 40 Mpx: one such decode at a time
_LARGE_DECODE = threading.Lock()
_ORIENTATION_TAG = 0x0112


def _view(width: float, height: float, aspect: float) -> tuple[float, float]:
    """The part of a `width` x `height` image the camera ever shows in frames of `aspect`."""
    if width / height > aspect * _MAX_PAN_FRAMES:
        return height * aspect * _MAX_PAN_FRAMES, height
    if width / height < aspect:
        return width, width / aspect
    return width, height


def _load_image(data: bytes, frame_w: int, frame_h: int) -> Image.Image:
    """The input image upright in RGB, cropped to what the camera shows, decoded no larger
    than the frame needs; InvalidRequest when it does not decode."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if image.getexif().get(_ORIENTATION_TAG, 1) in (5, 6, 7, 8):
            width, height = height, width  # turned a quarter once upright
        view_w, view_h = _view(width, height, frame_w / frame_h)
        # the factor the visible part is resized by; below 1 the image can shrink first
        scale = min(1.0, max(frame_w / view_w, frame_h / view_h) * (1 + _ZOOM))
        target = (max(1, math.ceil(image.width * scale)), max(1, math.ceil(image.height * scale)))
        large = image.width * image.height > MAX_STORED_IMAGE_PIXELS
        with _LARGE_DECODE if large else contextlib.nullcontext():
            if image.format == "JPEG":
                image.draft("RGB", target)  # decode at 1/2, 1/4 or 1/8 scale outright
            # decodes, then box-reduces in place: the full-size pixels are freed at once
            image.thumbnail(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
        upright = (ImageOps.exif_transpose(image) or image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(f"the input image cannot be decoded: {exc}") from None
    view_w, view_h = _view(upright.width, upright.height, frame_w / frame_h)
    left, top = (upright.width - view_w) / 2, (upright.height - view_h) / 2
    return upright.crop((round(left), round(top), round(left + view_w), round(top + view_h)))


class _Frames:
    """Draws frame i of a clip: background (gradient or panned image), caption, motion."""

    def __init__(self, request: VideoRequest, width: int, height: int, total: int) -> None:
        self.width, self.height, self.total = width, height, total
        dark, light = _palette(request)
        self.accent = light
        self.source: Image.Image | None = None
        if request.image is not None:
            image = _load_image(request.image, width, height)
            # pre-scale once to cover the frame with room to zoom: per-frame resizes stay ~1:1
            cover = max(width / image.width, height / image.height) * (1 + _ZOOM)
            size = (math.ceil(image.width * cover), math.ceil(image.height * cover))
            self.source = image.resize(size, Image.Resampling.LANCZOS)
            self.background = None
        else:
            # dark at the top, light at the bottom, with a soft glow in the middle
            gradient = Image.linear_gradient("L").resize((width, height))
            glow = ImageOps.invert(Image.radial_gradient("L").resize((width, height)))
            gradient = Image.blend(gradient, glow, 0.35)
            self.background = ImageOps.colorize(gradient, dark, light)
        caption = _caption(request, width, height)
        self.caption_rgb = caption.convert("RGB")
        self.caption_mask = caption.getchannel("A")
        self.caption_at = ((width - caption.width) // 2, height - caption.height - height // 12)
        self.small = ImageFont.load_default(size=max(12, min(width, height) // 40))

    def _base(self, i: int) -> Image.Image:
        t = i / max(1, self.total - 1)
        if self.source is None:
            assert self.background is not None
            return self.background.copy()
        # Ken Burns: zoom in slowly while panning from left to right
        zoom = 1 + _ZOOM * t
        scale = max(self.width / self.source.width, self.height / self.source.height)
        view_w = self.width / scale / zoom
        view_h = self.height / scale / zoom
        left = (self.source.width - view_w) * t
        top = (self.source.height - view_h) / 2
        box = (left, top, left + view_w, top + view_h)
        return self.source.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)

    def draw(self, i: int) -> Image.Image:
        """Frame `i` (0-based) as an RGB image."""
        frame = self._base(i)
        frame.paste(self.caption_rgb, self.caption_at, self.caption_mask)
        draw = ImageDraw.Draw(frame)
        t = i / max(1, self.total - 1)
        if self.source is None:
            # a ball circling the upper half, so the clip visibly moves
            r = min(self.width, self.height) // 16
            cx = self.width / 2 + self.width * 0.3 * math.cos(2 * math.pi * t)
            cy = self.height * 0.3 + self.height * 0.12 * math.sin(2 * math.pi * t)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.accent, outline=_WHITE)
        # elapsed time and a progress line along the bottom edge
        bar = max(4, self.height // 120)
        draw.rectangle((0, self.height - bar, int(self.width * t), self.height), fill=_WHITE)
        stamp = f"{i / FPS:4.1f} s"
        draw.text((self.width // 40, self.height // 40), stamp, font=self.small, fill=_WHITE)
        return frame


def render_video(
    request: VideoRequest, dest: Path, on_frame: Callable[[int, int], bool] | None = None
) -> None:
    """Encode the clip of `request` to `dest` (H.264, yuv420p, 24 fps, MP4); blocking.

    `on_frame(done, total)` is called after each frame; returning False stops
    the render with RenderStopped.
    """
    width, height = frame_size(request.resolution, request.aspect_ratio)
    total = request.duration_s * FPS
    frames = _Frames(request, width, height, total)
    # faststart puts the index first, so a browser can start playing before the whole file
    with av.open(str(dest), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "28"})
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        for i in range(total):
            frame = av.VideoFrame.from_image(frames.draw(i))  # type: ignore[no-untyped-call]
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
            if on_frame is not None and not on_frame(i + 1, total):
                raise RenderStopped(f"stopped after {i + 1} of {total} frames")
        for packet in stream.encode(None):
            out.mux(packet)


@dataclass
class _Operation:
    """One render of this process."""

    total: int
    path: Path
    done_frames: int = 0
    last_poll: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


class LocalRenderer:
    """Renders in a thread of this process; see the module docstring."""

    name = "local"
    #: the worker polls this often; a local render is cheap to ask about
    poll_interval_s = 0.2

    def __init__(self, work_dir: Path | None = None, abandon_after_s: float = 120.0) -> None:
        self.work_dir = work_dir
        #: a render nobody polled for this long stops (its job was cancelled or its worker left)
        self.abandon_after_s = abandon_after_s
        self.operations: dict[str, _Operation] = {}
        #: how many renders were started, for tests that prove a job ran once
        self.submitted = 0

    def check(self, request: VideoRequest) -> None:
        """Refuse what this renderer cannot make (checked at submit)."""
        if request.resolution not in RESOLUTIONS:
            raise InvalidRequest(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if request.duration_s not in DURATIONS_S:
            raise InvalidRequest(f"duration must be one of {', '.join(map(str, DURATIONS_S))} s")
        if request.aspect_ratio not in ASPECT_RATIOS:
            raise InvalidRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        if request.generate_audio:
            raise InvalidRequest(
                "the local renderer makes silent videos: send generate_audio false "
                "(or configure Veo with GEMINI_API_KEY)"
            )

    async def submit(self, request: VideoRequest) -> str:
        """Start rendering in a thread and return the operation's name."""
        self.check(request)
        name = f"local-{uuid.uuid4().hex}"
        folder = Path(tempfile.mkdtemp(prefix="cf-render-", dir=self.work_dir))
        op = _Operation(total=request.duration_s * FPS, path=folder / "video.mp4")
        self.operations[name] = op
        self.submitted += 1

        def on_frame(done: int, total: int) -> bool:
            op.done_frames = done
            return time.monotonic() - op.last_poll < self.abandon_after_s

        op.task = asyncio.create_task(asyncio.to_thread(render_video, request, op.path, on_frame))
        op.task.add_done_callback(lambda task: self._finished(name, task))
        return name

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        # an abandoned render has nobody to report to: drop it and its file
        if not task.cancelled() and isinstance(task.exception(), RenderStopped):
            log.info("render %s abandoned: %s", name, task.exception())
            self._forget(name)

    def _forget(self, name: str) -> None:
        op = self.operations.pop(name, None)
        if op is not None:
            shutil.rmtree(op.path.parent, ignore_errors=True)

    def _get(self, name: str) -> _Operation:
        op = self.operations.get(name)
        if op is None:
            raise OperationLost(f"this worker has no render {name!r} (it may have restarted)")
        return op

    async def poll(self, operation: str) -> PollResult:
        """Frames done / total; raises the render's error if it failed."""
        op = self._get(operation)
        op.last_poll = time.monotonic()
        assert op.task is not None
        if not op.task.done():
            # 1.0 only once the file is finished (the encoder flushes after the last frame)
            return PollResult(done=False, progress=min(op.done_frames / op.total, 0.99))
        exc = op.task.exception()
        if exc is not None:
            self._forget(operation)
            if isinstance(exc, ProviderError):
                raise exc
            raise ProviderError(f"local render failed: {type(exc).__name__}: {exc}") from exc
        return PollResult(done=True, progress=1.0)

    async def download(self, operation: str, dest: Path) -> None:
        """Move the finished MP4 to `dest` and forget the operation."""
        op = self._get(operation)
        assert op.task is not None
        if not op.task.done() or op.task.exception() is not None:
            raise ProviderError(f"render {operation!r} has no finished video")
        await asyncio.to_thread(shutil.move, op.path, dest)
        self._forget(operation)

    async def cancel(self, operation: str) -> None:
        """Stop a render nobody will collect (its job was cancelled or its run stopped)."""
        op = self.operations.get(operation)
        if op is not None:
            # the render checks this on its next frame and stops; its files go with it
            op.last_poll = -math.inf
            if op.task is not None and op.task.done():
                self._forget(operation)

    async def aclose(self) -> None:
        """Stop every render and remove their files (worker shutdown)."""
        for name, op in list(self.operations.items()):
            # renders check this on every frame and stop
            op.last_poll = -math.inf
            if op.task is not None:
                with contextlib.suppress(BaseException):
                    await op.task
            self._forget(name)
