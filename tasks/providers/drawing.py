"""Drawing shared by the local renderers (video and image): colours, captions, input images.

Everything here depends only on its arguments, so the same prompt and seed
always draw the same pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import threading

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from common.config import MAX_STORED_IMAGE_PIXELS
from tasks.providers.base import InvalidRequest

_LANDSCAPE = {"720p": (1280, 720), "1080p": (1920, 1080)}
_MAX_PROMPT_LINES = 6


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height of a clip: 720p is 1280x720, 1080p 1920x1080, swapped for 9:16."""
    width, height = _LANDSCAPE[resolution]
    return (height, width) if aspect_ratio == "9:16" else (width, height)


Colour = tuple[int, int, int]


def digest_of(prompt: str, seed: int | None) -> bytes:
    """32 bytes that depend only on the prompt and the seed: every choice a renderer draws."""
    return hashlib.sha256(f"{prompt}\n{seed}".encode()).digest()


def palette(prompt: str, seed: int | None) -> tuple[Colour, Colour]:
    """Two colours that depend only on the prompt and the seed, so a rerun looks the same."""
    digest = digest_of(prompt, seed)
    dark = (digest[0] // 4, digest[1] // 4, 40 + digest[2] // 4)
    light = (96 + digest[3] // 2, 64 + digest[4] // 2, 96 + digest[5] // 2)
    return dark, light


_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def wrap(text: str, font: _Font, max_width: float, max_lines: int) -> list[str]:
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


def caption(prompt: str, width: int, height: int, notes: list[str] | None = None) -> Image.Image:
    """The prompt (and smaller notes under it) on a translucent panel, drawn once per clip."""
    short = min(width, height)
    font_px, small_px = max(18, short // 18), max(12, short // 36)
    font = ImageFont.load_default(size=font_px)
    small = ImageFont.load_default(size=small_px)
    max_text = width * 0.84
    lines = wrap(prompt, font, max_text, _MAX_PROMPT_LINES)
    extra: list[str] = []
    for note in notes or []:
        extra += wrap(note, small, max_text, 2)
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


def load_image(
    data: bytes, frame_w: int, frame_h: int, *, zoom: float = 0.0, crop: bool = True
) -> Image.Image:
    """The input image upright in RGB, decoded no larger than a `frame_w` x `frame_h` frame
    (zoomed in by up to `zoom`) needs, and with `crop` cut to what the camera shows of it;
    InvalidRequest when it does not decode.

    A worker's memory per job thus follows the frame, not the image it was given.
    """
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if image.getexif().get(_ORIENTATION_TAG, 1) in (5, 6, 7, 8):
            width, height = height, width  # turned a quarter once upright
        view_w, view_h = _view(width, height, frame_w / frame_h) if crop else (width, height)
        # the factor the visible part is resized by; below 1 the image can shrink first
        scale = min(1.0, max(frame_w / view_w, frame_h / view_h) * (1 + zoom))
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
    if not crop:
        return upright
    view_w, view_h = _view(upright.width, upright.height, frame_w / frame_h)
    left, top = (upright.width - view_w) / 2, (upright.height - view_h) / 2
    return upright.crop((round(left), round(top), round(left + view_w), round(top + view_h)))
