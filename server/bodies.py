"""Decode and validate request bodies and path parameters with msgspec."""

from __future__ import annotations

import unicodedata
from typing import TypeVar
from uuid import UUID

import msgspec
from starlette.requests import Request

from server.errors import ApiError
from server.state import app_state

T = TypeVar("T")

#: characters of a visible category (letters, symbols) that draw nothing: Hangul fillers,
#: the braille blank
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing (413) as soon as it grows past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"The body may be at most {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "body_too_large", f"The body may be at most {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(request: Request, type_: type[T]) -> T:
    """The JSON body decoded into `type_`: 415, 413, 400 or 422 when it cannot be."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    raw = await read_limited(request, app_state(request).settings.max_body_bytes)
    try:
        value = msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        # typed decoding stops at the first wrong type, before it sees broken JSON further on
        try:
            msgspec.json.decode(raw)
        except RecursionError:
            raise ApiError(422, "invalid_body", "The body is nested too deeply.") from None
        except msgspec.DecodeError as syntax:
            raise ApiError(400, "malformed_json", f"The body is not valid JSON: {syntax}") from None
        raise ApiError(422, "invalid_body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(422, "invalid_body", "The body is nested too deeply.") from None
    # Postgres text and jsonb cannot hold NUL; refuse it here rather than fail in the database
    if b"\\u0000" in raw and _has_nul(msgspec.json.decode(raw)):
        raise ApiError(422, "invalid_body", "Strings may not contain the NUL character (\\u0000).")
    return value


def _has_nul(value: object) -> bool:
    # iterative: decoded bodies may nest nearly as deep as the recursion limit
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def has_visible_text(text: str) -> bool:
    """Whether `text` holds a character a person can see.

    White space, zero-width and other format characters (U+200B, U+2060,
    U+FEFF, the soft hyphen…), controls, lone combining marks and blank
    glyphs such as the Hangul filler do not count.
    """
    for char in text:
        if char in _BLANK_GLYPHS:
            continue
        # L letters, N numbers, P punctuation, S symbols; Z, C and M draw nothing on their own
        if unicodedata.category(char)[0] in "LNPS":
            return True
    return False


def path_uuid(request: Request, name: str) -> UUID:
    """A UUID path parameter; 422 `invalid_id` when it is not one."""
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(422, "invalid_id", f"{name} must be a UUID, got {raw!r}.") from None
