"""Image uploads, and the one check that an image reference names this project's upload.

An image is recognised by its content (Pillow), never by its name or declared
type, fully decoded, trimmed or downscaled (server/decoding.py), counted against
its owner's storage quota, and stored at `images/{project_id}/{id}.{ext}`.
Jobs and image nodes only ever hold such keys: a URL a user typed is never
fetched (no SSRF).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import msgspec
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from common.config import Settings
from common.protocol.events import NodeUpdated
from db import nodes as node_q
from db.changes import Store, publish_change
from db.nodes import Node, NodeType
from db.uploads import QuotaExceeded, Upload, get_project_upload, insert_upload, storage_used
from server.access import Action, authorize, project_for
from server.auth import require_user
from server.bodies import path_uuid
from server.errors import ApiError
from server.openapi import api
from server.responses import json_response
from server.state import app_state
from tasks.storage.auto import media_url_prefixes
from tasks.storage.local import MEDIA_PREFIX, InvalidKey, check_key

#: room for the multipart boundaries and part headers around the file itself
_MULTIPART_OVERHEAD = 64 * 1024
_MAX_REFERENCE_CHARS = 2048

log = logging.getLogger(__name__)


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


def _over_quota(used_bytes: int, size_bytes: int, quota_bytes: int) -> ApiError:
    return ApiError(
        413,
        "storage_quota_exceeded",
        f"Your projects hold {used_bytes:,} bytes of images; {size_bytes:,} more would pass "
        f"your quota of {quota_bytes:,}. Delete images or projects you no longer need.",
        used_bytes=used_bytes,
        quota_bytes=quota_bytes,
    )


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
    errors=[403, 413, 415, 422, 503],
)
async def upload_image(request: Request) -> Response:
    """POST /api/projects/{project_id}/uploads: multipart field `file`, optional `node_id`."""
    user = await require_user(request)
    project_id = path_uuid(request, "project_id")
    store = app_state(request).store
    settings = app_state(request).settings
    storage = app_state(request).storage
    await project_for(store, user, project_id, Action.EDIT)
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
    # a full decode under this process's pixel budget, in a thread; what comes back is what
    # is stored: the image cut at its end, or downscaled when larger than any job needs
    budget = app_state(request).decode_budget
    image = await budget.prepare(data, settings.max_upload_pixels)
    info, size = image.info, len(image.data)
    # the cheap check first, so a user far over the quota never writes to storage
    used = await storage_used(store.db, user.id)
    if used + size > settings.storage_quota_bytes:
        raise _over_quota(used, size, settings.storage_quota_bytes)

    upload_id = uuid.uuid4()
    key = f"images/{project_id}/{upload_id}.{info.ext}"
    # the object first, then the row under the quota lock: a row never names a missing object
    await storage.put_bytes(key, image.data, info.mime_type)
    try:
        upload = await insert_upload(
            store.db,
            upload_id,
            project_id,
            key,
            info.mime_type,
            info.width,
            info.height,
            size,
            quota_bytes=settings.storage_quota_bytes,
        )
    except Exception as exc:
        # quota reached by a parallel upload, the project deleted meanwhile, or an outage
        try:
            await storage.delete(key)
        except Exception as cleanup:
            log.warning("could not delete unrecorded upload %s: %s", key, cleanup)
        if isinstance(exc, QuotaExceeded):
            raise _over_quota(exc.used_bytes, size, exc.quota_bytes) from None
        raise
    presented = None
    if node is not None:
        node_id = node.id

        async def apply(seq: int) -> NodeUpdated:
            await authorize(store, user.id, project_id, Action.EDIT)
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
