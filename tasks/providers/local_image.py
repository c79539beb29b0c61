"""The local image renderer: a PNG drawn on the CPU from the prompt, the offline default.

Image i of a request is drawn with seed + i (a seed is picked when the
request has none); the same prompt, size and seed give the same PNG bytes.
It keeps the configured image model's limits, like the local video renderer
keeps Veo's.
"""

from __future__ import annotations

import asyncio
import io
import secrets

from PIL import Image, ImageDraw, ImageOps

from tasks.providers.drawing import caption, digest_of, palette
from tasks.providers.images import ImageOutput, ImageRequest, check_image_request

#: the long side of each image size
LONG_SIDE_PX = {"1K": 1024, "2K": 2048, "4K": 4096}
DEFAULT_IMAGE_MODEL = "gemini-2.5-flash-image"
_SEEDS = 2**32


def image_size_px(aspect_ratio: str, image_size: str) -> tuple[int, int]:
    """Width and height for an aspect ratio such as "16:9" at a size such as "1K"."""
    w, h = (int(part) for part in aspect_ratio.split(":"))
    long_side = LONG_SIDE_PX[image_size]
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def draw_image(prompt: str, seed: int, size: tuple[int, int]) -> bytes:
    """A PNG of `size`: a gradient in the prompt's colours, seeded shapes, the prompt on top."""
    width, height = size
    dark, light = palette(prompt, seed)
    gradient = Image.linear_gradient("L").rotate(45, expand=False).resize((width, height))
    image = ImageOps.colorize(gradient, dark, light)
    draw = ImageDraw.Draw(image)
    digest = digest_of(prompt, seed)
    short = min(width, height)
    # five circles whose places, sizes and colours the seed picks
    for k in range(5):
        a, b, c = digest[8 + 3 * k], digest[9 + 3 * k], digest[10 + 3 * k]
        cx, cy, r = width * a / 255, height * b / 255, short * (0.06 + 0.14 * c / 255)
        fill = (255 - light[0] // 2, 255 - a // 2, 255 - dark[2] // 2)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=(255, 255, 255))
    panel = caption(prompt, width, height, [f"seed {seed}"])
    image.paste(panel, ((width - panel.width) // 2, height - panel.height - height // 12), panel)
    buf = io.BytesIO()
    # no timestamps or text chunks: the same pixels give the same bytes
    image.save(buf, "PNG", optimize=False)
    return buf.getvalue()


class LocalImageRenderer:
    """Draws images in a thread of this process."""

    name = "local"

    def __init__(self, model: str = DEFAULT_IMAGE_MODEL) -> None:
        #: the image model whose limits requests are checked against
        self.model = model

    def check(self, request: ImageRequest) -> None:
        """Refuse what the configured image model could not make."""
        check_image_request(self.model, request)

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        """Draw every image of the request."""
        self.check(request)
        seed = request.seed if request.seed is not None else secrets.randbelow(_SEEDS)
        size = image_size_px(request.aspect_ratio, request.image_size)
        outputs = []
        for i in range(request.number_of_images):
            seed_i = (seed + i) % _SEEDS
            data = await asyncio.to_thread(draw_image, request.prompt, seed_i, size)
            outputs.append(ImageOutput(data=data, mime_type="image/png", seed=seed_i))
        return outputs
