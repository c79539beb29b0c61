"""API errors: one exception type, one JSON shape `{"error": {"code", "message"}}`.

Also the one place where an outage of a dependency (Postgres, Redis, a
socket) becomes `503 unavailable` with `Retry-After` instead of a 500, and
where a client that left mid-request is told apart from a failure of ours.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from common.errors import CanvasflowError
from db.pool import DatabaseUnavailable

log = logging.getLogger(__name__)


class ApiError(CanvasflowError):
    """A request that cannot be served, with its HTTP status and a machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(code, message)
        self.status = status
        #: response headers (Retry-After, Connection: close); `extra` goes into the body
        self.headers = headers or {}
        self.extra = extra


class ErrorBody(msgspec.Struct):
    """The `error` member of every error response."""

    code: str
    message: str


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """The JSON response for an error."""
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return Response(
        msgspec.json.encode({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


#: how long a client should wait before retrying a request refused by an outage
RETRY_AFTER_S = 5
#: nginx's "client closed request": nobody reads it, but logs and metrics tell it from a 500
CLIENT_CLOSED_REQUEST = 499

#: exceptions meaning a dependency is down, restarting or too slow, not that the request
#: was wrong
OUTAGES: tuple[type[BaseException], ...] = (
    # no pooled connection in time, or the server lost mid-query (db/pool.py)
    DatabaseUnavailable,
    # Postgres: connection lost or refused, shutting down or starting up, out of slots
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # Redis: unreachable, timed out, loading, a replica after a failover
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    # sockets: refused, reset, unreachable; TimeoutError (pool acquire, wait_for) is one too
    OSError,
)
#: OSErrors of our own files are bugs (500), not outages
_LOCAL_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                      NotADirectoryError)  # fmt: skip
#: asyncpg reports a connection that died under it as an InterfaceError with these words
_CLOSED_CONNECTION = ("connection is closed", "pool is closing", "connection was closed")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means a dependency is unavailable (answer 503), not a bug (500)."""
    if isinstance(exc, _LOCAL_FILE_ERRORS):
        return False
    if isinstance(exc, asyncpg.InterfaceError):
        return any(words in str(exc) for words in _CLOSED_CONNECTION)
    return isinstance(exc, OUTAGES)


def unavailable() -> ApiError:
    """The 503 every outage answers."""
    return ApiError(
        503,
        "unavailable",
        f"A service canvasflow depends on is unavailable; retry in {RETRY_AFTER_S} s.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
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
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 in the same shape."""
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return error_response(exc.status_code, code, message)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Log an unexpected failure and answer 500 without leaking internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")


async def handle_outage(request: Request, exc: Exception) -> Response:
    """503 `unavailable` with Retry-After for an outage; anything else is a 500."""
    if not is_outage(exc):
        return await handle_unexpected(request, exc)
    # one line without a traceback: an outage is the operator's news, not a bug report
    log.warning(
        "unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc
    )
    return await handle_api_error(request, unavailable())


async def handle_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client left before its request was read: nothing to answer, nothing broken."""
    log.info("client left during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    ClientDisconnect: handle_client_disconnect,
    **dict.fromkeys((*OUTAGES, asyncpg.InterfaceError), handle_outage),
    Exception: handle_unexpected,
}
