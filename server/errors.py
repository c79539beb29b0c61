"""API errors: one exception type, one JSON shape `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from common.errors import CanvasflowError

log = logging.getLogger(__name__)


class ApiError(CanvasflowError):
    """A request that cannot be served, with its HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(code, message)
        self.status = status
        self.extra = extra


class ErrorBody(msgspec.Struct):
    """The `error` member of every error response."""

    code: str
    message: str


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """The JSON response for an error."""
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return Response(
        msgspec.json.encode({"error": body}), status_code=status, media_type="application/json"
    )


def not_found(what: str) -> ApiError:
    """A 404 for a resource the caller cannot see; never says whether it exists."""
    return ApiError(404, f"{what}_not_found", f"No {what.replace('_', ' ')} with that id.")


_HTTP_CODES = {
    404: ("not_found", "No route matches this path."),
    405: ("method_not_allowed", "This path does not accept that method."),
}


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """Render an ApiError."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 in the same shape."""
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return error_response(exc.status_code, code, message)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Log an unexpected failure and answer 500 without leaking internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
