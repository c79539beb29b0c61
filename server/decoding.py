"""Uploaded images: recognised by content, fully decoded, trimmed or downscaled before storage.

Every upload is decoded in full (a damaged or truncated file is refused,
not discovered later by a job), under a budget of pixels decoded at once in
this process, so concurrent uploads cannot exhaust its memory. What is
stored is never bigger than any provider needs:

- an image of at most `MAX_STORED_IMAGE_PIXELS` (2560x2560) is stored as
  sent, cut at the end of the image: bytes appended after it (a second
  file, a zip, junk) are dropped;
- a larger one is downscaled to that many pixels, turned upright (EXIF
  orientation) and re-encoded in its own format.

So a job never decodes more than 2560x2560 of a new upload, whatever was
sent, and the worker's memory stays bounded (see docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps

from common.config import MAX_STORED_IMAGE_PIXELS
from server.errors import ApiError

#: Pillow format → (MIME type, file extension); nothing else is accepted
IMAGE_FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
#: what decoding and downscaling take at their peak per pixel of the upload: Pillow holds
#: 4 bytes a pixel (RGB too), plus the decoder's buffers and the downscaled copy
DECODE_BYTES_PER_PIXEL = 6
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {},
    "JPEG": {"quality": 90},
    "WEBP": {"quality": 90},
}


@dataclass(frozen=True)
class ImageInfo:
    """What the content of an uploaded file turned out to be."""

    mime_type: str
    ext: str
    width: int
    height: int


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to store and what they are."""

    data: bytes
    info: ImageInfo
    #: whether the image was downscaled and re-encoded (else: the upload, trimmed)
    reencoded: bool


def _unsupported() -> ApiError:
    return ApiError(
        422, "unsupported_image", "The file is not a PNG, JPEG or WebP image, or it is damaged."
    )


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ApiError:
    size = f" ({width}x{height})" if width else ""
    return ApiError(
        422,
        "too_many_pixels",
        f"The image{size} has more than {max_pixels:,} pixels; scale it down.",
    )


def sniff_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Recognise PNG/JPEG/WebP by content and check the pixel limit; ApiError 422 otherwise."""
    try:
        # `formats` limits Pillow to the three accepted decoders; open() reads only the header
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as image:
            width, height = image.size
            fmt = image.format or ""
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            # checks the file's structure (PNG: every chunk's CRC) without decoding pixels
            image.verify()
    except Image.DecompressionBombError:
        raise _too_many_pixels(0, 0, max_pixels) from None
    except ApiError:
        raise
    except Exception:  # Pillow raises many types for files that are not images
        raise _unsupported() from None
    if fmt not in IMAGE_FORMATS:
        raise _unsupported()
    mime_type, ext = IMAGE_FORMATS[fmt]
    return ImageInfo(mime_type=mime_type, ext=ext, width=width, height=height)


def _png_end(data: bytes) -> int:
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return min(pos, len(data))
    return len(data)


def _webp_end(data: bytes) -> int:
    size = int.from_bytes(data[4:8], "little")
    return min(8 + size + (size & 1), len(data))


#: JPEG markers without a length: TEM and the restart markers
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_end(data: bytes) -> int:
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return size  # not where a marker should be: keep what the decoder accepted
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xD9:  # end of image
            return pos + 2
        elif marker in _STANDALONE:
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:
                # a scan's entropy-coded data runs to the next marker: 0xFF not followed by a
                # stuffed 0x00, a restart marker or another 0xFF
                while (pos := data.find(b"\xff", pos)) != -1 and pos + 1 < size:
                    following = data[pos + 1]
                    if following != 0 and following != 0xFF and following not in _STANDALONE:
                        break
                    pos += 1
                if pos == -1:
                    return size
    return size


def image_end(data: bytes, fmt: str) -> int:
    """The offset just past the image in `data` (anything after it is not the image)."""
    return {"PNG": _png_end, "WEBP": _webp_end, "JPEG": _jpeg_end}[fmt](data)


def _downscaled(image: Image.Image, fmt: str) -> Image.Image:
    scale = math.sqrt(MAX_STORED_IMAGE_PIXELS / (image.width * image.height))
    target = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    if fmt == "JPEG":
        # decode at 1/2, 1/4 or 1/8 scale straight away: all the data is still read
        image.draft("RGB", target)
    image.load()
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if fmt == "JPEG" or image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if alpha and fmt != "JPEG" else "RGB")
    # box-reduce by whole factors first, then resample: little memory and time beyond the decode
    image.thumbnail(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return ImageOps.exif_transpose(image) or image


def prepare_image(data: bytes, max_pixels: int, info: ImageInfo | None = None) -> PreparedImage:
    """Check, fully decode, and trim or downscale an upload; blocking (run it in a thread)."""
    info = info or sniff_image(data, max_pixels)
    fmt = next(f for f, (mime, _) in IMAGE_FORMATS.items() if mime == info.mime_type)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            if info.width * info.height <= MAX_STORED_IMAGE_PIXELS:
                # every pixel decoded: truncated or corrupt data raise here, not in a job
                image.load()
                return PreparedImage(data[: image_end(data, fmt)], info, reencoded=False)
            small = _downscaled(image, fmt)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise _unsupported() from None
    out = io.BytesIO()
    small.save(out, fmt, **_SAVE_OPTIONS[fmt])
    width, height = small.size
    return PreparedImage(
        out.getvalue(),
        ImageInfo(mime_type=info.mime_type, ext=info.ext, width=width, height=height),
        reencoded=True,
    )


def _load_malloc_trim() -> ctypes._NamedFuncPointer | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps a big decode's pages otherwise).

    A 40 Mpx decode frees ~230 MiB that glibc's per-thread arenas would keep:
    with uploads landing on different threads, the process's RSS would grow
    by that much per thread instead of staying under the budget.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _prepare_and_release(data: bytes, max_pixels: int, info: ImageInfo) -> PreparedImage:
    try:
        return prepare_image(data, max_pixels, info)
    finally:
        release_free_memory()


class DecodeBudget:
    """At most `max_pixels` pixels being decoded at once in this process (a weighted lock).

    An upload waits for room for its own pixels, so the memory decoding takes
    stays under about `max_pixels * DECODE_BYTES_PER_PIXEL` whatever arrives at
    once (measured by `python -m bench.memory`).
    """

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.in_use = 0
        self._room = asyncio.Condition()

    async def prepare(self, data: bytes, max_pixels: int) -> PreparedImage:
        """`prepare_image` in a thread once the budget has room for this image."""
        info = await asyncio.to_thread(sniff_image, data, max_pixels)
        cost = min(info.width * info.height, self.max_pixels)
        async with self._room:
            await self._room.wait_for(lambda: self.in_use + cost <= self.max_pixels)
            self.in_use += cost
        try:
            return await asyncio.to_thread(_prepare_and_release, data, max_pixels, info)
        finally:
            async with self._room:
                self.in_use -= cost
                self._room.notify_all()
