"""Request ids, one log line per request, HTTP metrics, body-read timeouts, and /metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import logs
from common.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS
from server.errors import ApiError
from server.openapi import api

log = logging.getLogger("canvasflow.http")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DEFAULT_BODY_TIMEOUT_S = 30.0


def _body_timeout_s(scope: Scope) -> float:
    # the app's resources exist once its lifespan ran (not for a bare ASGI app in a test)
    state = getattr(getattr(scope.get("app"), "state", None), "canvasflow", None)
    return (
        float(getattr(state.settings, "body_timeout_s", _DEFAULT_BODY_TIMEOUT_S))
        if state
        else _DEFAULT_BODY_TIMEOUT_S
    )


def timed_receive(receive: Receive, timeout_s: float) -> Receive:
    """`receive` that gives a client `timeout_s` for each piece of its body.

    Past it the request fails with 408 `body_timeout` and the connection is
    closed: a body sent a byte at a time, or never finished, cannot hold a
    request open. Once the body is complete, receive waits as long as the app
    likes (for the disconnect a streaming response listens for).
    """
    done = False

    async def receive_in_time() -> Message:
        nonlocal done
        if done:
            return await receive()
        try:
            async with asyncio.timeout(timeout_s):
                message = await receive()
        except TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"The request body stalled for {timeout_s:g} s; send it at once.",
                headers={"Connection": "close"},
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return receive_in_time


class RequestObserver:
    """ASGI middleware: tag the request with an id, then log and measure it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with its id in context and in the `X-Request-ID` header."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _CLIENT_ID.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, timed_receive(receive, _body_timeout_s(scope)), send_with_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # the template, not the path: ids in paths would explode the label set
            template = getattr(route, "path", None)
            label = "static" if template == "" else (template or "unmatched")
            method = scope["method"]
            HTTP_REQUESTS.labels(label, method, str(status)).inc()
            HTTP_LATENCY.labels(label, method).observe(elapsed)
            log.info(
                "%s %s %d",
                method,
                label,
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "route": label},
            )
            logs.request_id.reset(token)


@api(
    "Prometheus metrics of this process",
    auth=False,
    response={"type": "string"},
    response_content_type="text/plain",
)
async def metrics(request: Request) -> Response:
    """GET /metrics: this process's metrics in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
