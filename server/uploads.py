"""Image uploads, and the one check that an image reference names this project's upload.

An image is recognised by its content (Pillow), never by its name or declared
type, and stored at `images/{project_id}/{id}.{ext}`. Jobs and image nodes
only ever hold such keys: a URL a user typed is never fetched (no SSRF).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import msgspec
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from common.config import Settings
from common.protocol.events import NodeUpdated
from db import nodes as node_q
from db.changes import Store, publish_change
from db.nodes import Node, NodeType
from db.uploads import Upload, get_project_upload, insert_upload
from server.access import owned_project
from server.auth import require_user
from server.bodies import path_uuid
from server.errors import ApiError
from server.openapi import api
from server.responses import json_response
from server.state import app_state
from tasks.storage.auto import media_url_prefixes
from tasks.storage.local import MEDIA_PREFIX, InvalidKey, check_key

#: Pillow format → (MIME type, file extension); nothing else is accepted
IMAGE_FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
#: room for the multipart boundaries and part headers around the file itself
_MULTIPART_OVERHEAD = 64 * 1024
_MAX_REFERENCE_CHARS = 2048


class UploadResponse(msgspec.Struct, omit_defaults=True):
    """A stored image; `node` is the image node it was attached to, when one was named."""

    key: str
    url: str
    mime_type: str
    width: int
    height: int
    size_bytes: int
    node: Node | None = None


UPLOAD_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "PNG, JPEG or WebP"},
        "node_id": {
            "type": "string",
            "format": "uuid",
            "description": "an image node of this project to attach the image to",
        },
    },
}


@dataclass(frozen=True)
class ImageInfo:
    """What the content of an uploaded file turned out to be."""

    mime_type: str
    ext: str
    width: int
    height: int


def sniff_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Recognise PNG/JPEG/WebP by content and check the pixel limit; ApiError 422 otherwise."""
    try:
        # `formats` limits Pillow to the three accepted decoders; open() reads only the header
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as image:
            width, height = image.size
            fmt = image.format or ""
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            # checks the file's structure without decoding every pixel
            image.verify()
    except Image.DecompressionBombError:
        raise _too_many_pixels(0, 0, max_pixels) from None
    except ApiError:
        raise
    except Exception:  # Pillow raises many types for files that are not images
        raise ApiError(
            422, "unsupported_image", "The file is not a PNG, JPEG or WebP image."
        ) from None
    if fmt not in IMAGE_FORMATS:
        raise ApiError(422, "unsupported_image", "The file is not a PNG, JPEG or WebP image.")
    mime_type, ext = IMAGE_FORMATS[fmt]
    return ImageInfo(mime_type=mime_type, ext=ext, width=width, height=height)


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ApiError:
    size = f" ({width}x{height})" if width else ""
    return ApiError(
        422,
        "too_many_pixels",
        f"The image{size} has more than {max_pixels:,} pixels; scale it down.",
    )


def _key_under(reference: str, prefix: str) -> str | None:
    """The key part of `reference` if it is a URL under `prefix` (same scheme and host)."""
    parts, base = urlsplit(reference), urlsplit(prefix)
    same_origin = (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower())
    if not same_origin or not parts.path.startswith(base.path):
        return None
    return unquote(parts.path[len(base.path) :])


def key_from_reference(
    reference: str, public_url: str, other_prefixes: tuple[str, ...] = ()
) -> str | None:
    """The storage key an image reference names, or None when it is not one of ours.

    A reference is a storage key (`images/…`) or a media URL this deployment
    issued (`{public_url}/media/{key}?exp=…&sig=…`, or its path alone, or a
    URL under one of `other_prefixes`, e.g. a GCS signed URL). Other hosts,
    other schemes and keys with `..` or odd characters give None.
    """
    if len(reference) > _MAX_REFERENCE_CHARS:
        return None
    for prefix in other_prefixes:
        key = _key_under(reference, prefix)
        if key is not None:
            try:
                return check_key(key)
            except InvalidKey:
                return None
    if "://" in reference or reference.startswith("/"):
        parts = urlsplit(reference)
        ours = urlsplit(public_url)
        if parts.scheme or parts.netloc:
            same_host = parts.netloc.lower() == ours.netloc.lower()
            if parts.scheme not in ("http", "https") or not same_host:
                return None
        prefix = ours.path.rstrip("/") + MEDIA_PREFIX
        if not parts.path.startswith(prefix):
            return None
        key = unquote(parts.path[len(prefix) :])
    else:
        key = reference
    try:
        return check_key(key)
    except InvalidKey:
        return None


async def project_image(
    store: Store, settings: Settings, project_id: UUID, reference: object, field: str
) -> Upload:
    """The upload of `project_id` that `reference` names; 422 `invalid_{field}` otherwise."""
    key = None
    if isinstance(reference, str):
        key = key_from_reference(reference, settings.public_url, media_url_prefixes(settings))
    upload = None
    if key is not None and key.startswith(f"images/{project_id}/"):
        upload = await get_project_upload(store.db, project_id, key)
    if upload is None:
        raise ApiError(
            422,
            f"invalid_{field}",
            f"{field} must name an image uploaded to this project "
            "(its key, or the media URL the upload returned).",
        )
    return upload


async def _read_form(request: Request, max_bytes: int) -> FormData:
    """Parse the multipart body, refusing (413) once it grows past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes - _MULTIPART_OVERHEAD)

    async def limited() -> AsyncGenerator[bytes, None]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes - _MULTIPART_OVERHEAD)
            yield chunk

    parser = MultiPartParser(request.headers, limited(), max_files=1, max_fields=4)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        message = f"The multipart body is malformed: {exc}."
        raise ApiError(422, "invalid_multipart", message) from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"The image may be at most {max_bytes} bytes.")


async def _image_node(store: Store, project_id: UUID, raw: str) -> Node:
    """The image node of this project named by the form's node_id; 422 otherwise."""
    try:
        node_id = UUID(raw)
    except ValueError:
        raise ApiError(422, "invalid_id", f"node_id must be a UUID, got {raw[:64]!r}.") from None
    node = await node_q.get_node(store.db, node_id)
    if node is None or node.project_id != project_id or node.type != NodeType.IMAGE:
        raise ApiError(422, "invalid_node", "node_id must name an image node of this project.")
    return node


@api(
    "Upload an image (PNG, JPEG or WebP), optionally attaching it to an image node",
    body=UPLOAD_FORM_SCHEMA,
    body_content_type="multipart/form-data",
    response=UploadResponse,
    status=201,
    errors=[403, 413, 415, 422],
)
async def upload_image(request: Request) -> Response:
    """POST /api/projects/{project_id}/uploads: multipart field `file`, optional `node_id`."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    settings = app_state(request).settings
    storage = app_state(request).storage
    await owned_project(store, user, project_id)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type", "Send the image as multipart/form-data, field `file`."
        )
    form = await _read_form(request, settings.max_upload_bytes + _MULTIPART_OVERHEAD)
    try:
        file = form.get("file")
        node_field = form.get("node_id")
        if not isinstance(file, UploadFile):
            raise ApiError(422, "missing_file", "Send the image in the multipart field `file`.")
        data = await file.read(settings.max_upload_bytes + 1)
    finally:
        await form.close()
    if len(data) > settings.max_upload_bytes:
        raise _too_large(settings.max_upload_bytes)
    node = None
    if node_field is not None:
        if not isinstance(node_field, str):
            raise ApiError(422, "invalid_node", "node_id must be a form field, not a file.")
        node = await _image_node(store, project_id, node_field)
    # decoding headers and checking structure is CPU work: keep it off the event loop
    info = await asyncio.to_thread(sniff_image, data, settings.max_upload_pixels)

    upload_id = uuid.uuid4()
    key = f"images/{project_id}/{upload_id}.{info.ext}"
    await storage.put_bytes(key, data, info.mime_type)
    upload = await insert_upload(
        store.db, upload_id, project_id, key, info.mime_type, info.width, info.height, len(data)
    )
    presented = None
    if node is not None:
        node_id = node.id

        async def apply(seq: int) -> NodeUpdated:
            updated = await node_q.update_node(
                store.db, node_id, version=seq, data_patch={"image_key": key}
            )
            if updated is None:
                raise ApiError(422, "invalid_node", "The image node was deleted meanwhile.")
            return NodeUpdated(node=updated)

        changed = await publish_change(store, project_id, apply)
        presented = await app_state(request).presenter.node(changed.data.node)
    body = UploadResponse(
        key=upload.key,
        url=await storage.sign_url(upload.key, settings.media_url_ttl_s),
        mime_type=upload.mime_type,
        width=upload.width,
        height=upload.height,
        size_bytes=upload.size_bytes,
        node=presented,
    )
    return json_response(body, 201)
