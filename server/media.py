"""Serve local storage at HMAC-signed, expiring URLs: `GET /media/{key}?exp=…&sig=…`.

The signature is the whole authorisation (browsers load these URLs in
<video> and <img> tags, without our headers). Keys are checked before any
file is touched, so no path escapes the storage root. Range requests (a
<video> seeking) are answered by Starlette's FileResponse with 206.
"""

from __future__ import annotations

import os
import time
from stat import S_ISREG

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from server.errors import ApiError
from server.openapi import api
from server.state import app_state
from tasks.storage.local import InvalidKey, LocalStorage

#: by file extension; keys are made by canvasflow, so the extension is ours too
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


def content_type_for(key: str) -> str:
    """The MIME type of a stored object, from its key's extension."""
    ext = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    return CONTENT_TYPES.get(ext, "application/octet-stream")


def _not_found() -> ApiError:
    return ApiError(404, "media_not_found", "No media at this URL.")


@api(
    "A stored image or video, at the signed URL a node or job carried",
    auth=False,
    query=[("exp", "integer", True), ("sig", "string", True)],
    response={"type": "string", "format": "binary"},
    response_content_type="application/octet-stream",
    errors=[403, 404],
)
async def get_media(request: Request) -> Response:
    """GET /media/{key}: the object if `sig` signs `key` and `exp` has not passed."""
    storage = app_state(request).storage
    if not isinstance(storage, LocalStorage):
        # other backends (GCS) serve their own signed URLs
        raise _not_found()
    key = request.path_params["key"]
    try:
        path = storage.path_for(key)
    except InvalidKey:
        raise _not_found() from None
    exp = request.query_params.get("exp", "")
    sig = request.query_params.get("sig", "")
    if not storage.verify(key, exp, sig):
        raise ApiError(
            403,
            "invalid_signature",
            "This media URL is expired or its signature is wrong; fetch the node or job again "
            "for a fresh URL.",
        )
    try:
        stat_result = os.stat(path)
    except OSError:
        raise _not_found() from None
    if not S_ISREG(stat_result.st_mode):
        raise _not_found()
    # cacheable by the browser until the URL expires, never by shared caches
    max_age = max(0, int(exp) - int(time.time()))
    return FileResponse(
        path,
        media_type=content_type_for(key),
        headers={
            "cache-control": f"private, max-age={max_age}",
            "x-content-type-options": "nosniff",
        },
        stat_result=stat_result,
    )
