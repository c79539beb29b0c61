"""Drawing and encoding one clip of the local renderer: every mode made visible.

- text only: a gradient in the prompt's colours with a ball circling;
- a first frame: the image, slowly zoomed and panned (Ken Burns);
- first and last frame: the same, cross-fading into the last frame, so the
  clip ends on it;
- reference images: shown as framed tiles along the top of every frame;
- an extension: the source clip's frames first, then new frames that start
  from its last frame and move on from it, EXTENSION_ADDED_S seconds more;
- audio: a tone whose pitch the seed picks.

Everything depends only on the request (the seed included), and the encoder
runs with fixed settings, so the same request gives the same bytes.
"""

from __future__ import annotations

import array
import io
import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

from tasks.providers.base import EXTENSION_ADDED_S, InvalidRequest, VideoRequest
from tasks.providers.drawing import caption, digest_of, frame_size, load_image, palette

FPS = 24
AUDIO_RATE = 48_000
#: how far an input image zooms in over the whole clip
_ZOOM = 0.12
_WHITE = (255, 255, 255)
#: what `enhance_prompt` adds to the prompt, here as on the caption
ENHANCEMENT = "cinematic lighting, gentle camera motion"


class RenderStopped(Exception):
    """The render was abandoned (nobody polls it any more) and stopped early."""


def prompt_of(request: VideoRequest) -> str:
    """The prompt as drawn: enhanced when the request asks for it."""
    if request.enhance_prompt:
        return f"{request.prompt}, {ENHANCEMENT}"
    return request.prompt


def _notes(request: VideoRequest) -> list[str]:
    notes = []
    if request.negative_prompt:
        notes.append(f"avoid: {request.negative_prompt}")
    if request.person_generation:
        notes.append(f"people: {request.person_generation.replace('_', ' ')}")
    notes.append(f"seed {request.seed}" if request.seed is not None else "no seed")
    return notes


class _Cover:
    """An image pre-scaled to cover the frame with room to zoom, and its Ken Burns view."""

    def __init__(self, image: Image.Image, width: int, height: int) -> None:
        self.width, self.height = width, height
        cover = max(width / image.width, height / image.height) * (1 + _ZOOM)
        size = (math.ceil(image.width * cover), math.ceil(image.height * cover))
        # pre-scaled once: per-frame resizes stay about 1:1
        self.source = image.resize(size, Image.Resampling.LANCZOS)

    def view(self, t: float) -> Image.Image:
        """The frame at time `t` in [0, 1]: zooming in slowly while panning left to right."""
        zoom = 1 + _ZOOM * t
        scale = max(self.width / self.source.width, self.height / self.source.height)
        view_w = self.width / scale / zoom
        view_h = self.height / scale / zoom
        left = (self.source.width - view_w) * t
        top = (self.source.height - view_h) / 2
        box = (left, top, left + view_w, top + view_h)
        return self.source.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)


def _tiles(images: list[Image.Image], width: int, height: int) -> tuple[Image.Image, Image.Image]:
    """The reference images as framed tiles along the top: the strip and its mask."""
    tile_h = height // 4
    pad = max(4, height // 60)
    strip = Image.new("RGB", (width, tile_h + 2 * pad), (0, 0, 0))
    mask = Image.new("L", strip.size, 0)
    x = pad
    for image in images:
        tile = ImageOps.contain(image, (width // 3 - 2 * pad, tile_h))
        framed = ImageOps.expand(tile, border=max(2, pad // 2), fill=_WHITE)
        strip.paste(framed, (x, pad))
        mask.paste(255, (x, pad, x + framed.width, pad + framed.height))
        x += framed.width + pad
    return strip, mask


class Frames:
    """Draws the new frames of a clip (those after an extension's source)."""

    def __init__(
        self,
        request: VideoRequest,
        width: int,
        height: int,
        total: int,
        start: Image.Image | None = None,
    ) -> None:
        self.width, self.height, self.total = width, height, total
        dark, light = palette(request.prompt, request.seed)
        self.accent = light
        #: where the ball starts on its circle: the seed moves it
        self.phase = digest_of(request.prompt, request.seed)[6] / 255
        first = start
        if first is None and request.image is not None:
            first = load_image(request.image, width, height, zoom=_ZOOM)
        self.first = None if first is None else _Cover(first, width, height)
        self.last = None
        if request.last_frame is not None:
            self.last = _Cover(
                load_image(request.last_frame, width, height, zoom=_ZOOM), width, height
            )
        self.background = None
        if self.first is None:
            # dark at the top, light at the bottom, with a soft glow in the middle
            gradient = Image.linear_gradient("L").resize((width, height))
            glow = ImageOps.invert(Image.radial_gradient("L").resize((width, height)))
            gradient = Image.blend(gradient, glow, 0.35)
            self.background = ImageOps.colorize(gradient, dark, light)
        self.tiles = None
        if request.reference_images:
            # tiles are a third of the width and a quarter of the height, shown whole
            refs = [
                load_image(data, width // 3, height // 4, crop=False)
                for data in request.reference_images
            ]
            self.tiles = _tiles(refs, width, height)
        panel = caption(prompt_of(request), width, height, _notes(request))
        self.caption_rgb = panel.convert("RGB")
        self.caption_mask = panel.getchannel("A")
        self.caption_at = ((width - panel.width) // 2, height - panel.height - height // 12)
        self.small = ImageFont.load_default(size=max(12, min(width, height) // 40))

    def _base(self, t: float) -> Image.Image:
        if self.first is None:
            assert self.background is not None
            return self.background.copy()
        frame = self.first.view(t)
        if self.last is not None:
            # the morph: the last frame fades in until it is all that is left
            frame = Image.blend(frame, self.last.view(1 - t), t)
        return frame

    def draw(self, i: int, offset_s: float = 0.0) -> Image.Image:
        """New frame `i` (0-based) as an RGB image; `offset_s` shifts the time stamp."""
        t = i / max(1, self.total - 1)
        frame = self._base(t)
        if self.tiles is not None:
            frame.paste(self.tiles[0], (0, 0), self.tiles[1])
        frame.paste(self.caption_rgb, self.caption_at, self.caption_mask)
        draw = ImageDraw.Draw(frame)
        if self.first is None:
            # a ball circling the upper half, so the clip visibly moves
            r = min(self.width, self.height) // 16
            angle = 2 * math.pi * (t + self.phase)
            cx = self.width / 2 + self.width * 0.3 * math.cos(angle)
            cy = self.height * 0.3 + self.height * 0.12 * math.sin(angle)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.accent, outline=_WHITE)
        # elapsed time and a progress line along the bottom edge
        bar = max(4, self.height // 120)
        draw.rectangle((0, self.height - bar, int(self.width * t), self.height), fill=_WHITE)
        stamp = f"{offset_s + i / FPS:4.1f} s"
        draw.text((self.width // 40, self.height // 40), stamp, font=self.small, fill=_WHITE)
        return frame


def source_frames(data: bytes, width: int, height: int) -> Iterator[Image.Image]:
    """The frames of the clip to extend, fitted to the output size; InvalidRequest if unreadable."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            for frame in container.decode(video=0):
                image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
                if image.size != (width, height):
                    image = ImageOps.fit(image, (width, height))
                yield image
    except av.FFmpegError as exc:
        raise InvalidRequest(f"the clip to extend cannot be decoded: {exc}") from None


def _tone(seed: int | None, samples: int, start: int) -> bytes:
    """`samples` of a soft tone (mono float32) from sample `start`; the seed picks the pitch."""
    pitch = 220.0 + (0 if seed is None else seed % 440)
    step = 2 * math.pi * pitch / AUDIO_RATE
    wave = array.array("f", (0.2 * math.sin(step * n) for n in range(start, start + samples)))
    return wave.tobytes()


def render_video(
    request: VideoRequest, dest: Path, on_frame: Callable[[int, int], bool] | None = None
) -> int:
    """Encode the clip of `request` to `dest` (H.264, 24 fps, MP4); blocking; returns its frames.

    `on_frame(done, total)` is called after each frame; returning False stops
    the render with RenderStopped. An extension's total counts its source's
    frames as the request states its length.
    """
    width, height = frame_size(request.resolution, request.aspect_ratio)
    new_frames = (EXTENSION_ADDED_S if request.extends else request.duration_s) * FPS
    old_frames = (request.extend_duration_s or 0) * FPS
    total = old_frames + new_frames
    # faststart puts the index first, so a browser can start playing before the whole file
    options = {"movflags": "+faststart"}
    with av.open(str(dest), "w", format="mp4", container_options=options) as out:
        # one thread: x264's output then depends only on its input (the same bytes every run)
        stream = out.add_stream(
            "libx264", rate=FPS, options={"preset": "veryfast", "crf": "28", "threads": "1"}
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE) if request.generate_audio else None
        done = 0

        def emit(image: Image.Image) -> None:
            nonlocal done
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = done
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
            done += 1
            if on_frame is not None and not on_frame(done, max(total, done)):
                raise RenderStopped(f"stopped after {done} of {total} frames")

        last: Image.Image | None = None
        if request.extend_video is not None:
            for image in source_frames(request.extend_video, width, height):
                emit(image)
                last = image
            if last is None:
                raise InvalidRequest("the clip to extend has no frames")
        offset_s = done / FPS
        frames = Frames(request, width, height, new_frames, start=last)
        for i in range(new_frames):
            emit(frames.draw(i, offset_s))
        for packet in stream.encode(None):
            out.mux(packet)
        if audio is not None:
            _encode_tone(out, audio, request.seed, done)
    return done


def _encode_tone(
    out: av.container.OutputContainer, audio: av.AudioStream, seed: int | None, video_frames: int
) -> None:
    """The clip's sound: a tone as long as its pictures."""
    total = video_frames * AUDIO_RATE // FPS
    # AAC codes 1024 samples a frame
    chunk = 1024
    for start in range(0, total, chunk):
        samples = min(chunk, total - start)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
        frame.planes[0].update(_tone(seed, samples, start))
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode(None):
        out.mux(packet)
