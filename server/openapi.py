"""The OpenAPI document, generated from the route table and the msgspec types of each handler.

Each handler declares its body and response types with `@api(...)`; the
document is built by walking `server.app.routes()`, so a route without a
declaration is caught by the tests rather than silently missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.errors import ErrorBody
from server.responses import json_response

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Not logged in",
    403: "Forbidden: a cross-site origin, or a role without the right",
    404: "Not found (or not yours)",
    405: "Method not allowed",
    409: "Conflict with the current state",
    410: "Gone: the invitation was used, revoked or has expired",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid body or parameters",
    429: "Rate limited",
    503: "Unavailable",
}


class ErrorResponse(msgspec.Struct):
    """Every error: `{"error": {"code", "message"}}`."""

    error: ErrorBody


@dataclass(frozen=True)
class ApiMeta:
    """What a handler takes and returns, for the OpenAPI document."""

    summary: str
    body: Any = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    auth: bool = True
    body_content_type: str = "application/json"
    response_content_type: str = "application/json"
    query: tuple[tuple[str, str, bool], ...] = field(default=())


def api(
    summary: str,
    *,
    body: Any = None,
    response: Any = None,
    status: int = 200,
    errors: Sequence[int] = (),
    auth: bool = True,
    body_content_type: str = "application/json",
    response_content_type: str = "application/json",
    query: Sequence[tuple[str, str, bool]] = (),
) -> Callable[[F], F]:
    """Declare a handler's types: `query` lists (name, JSON type, required)."""

    def mark(fn: F) -> F:
        fn.__api__ = ApiMeta(  # type: ignore[attr-defined]
            summary=summary,
            body=body,
            response=response,
            status=status,
            errors=tuple(errors),
            auth=auth,
            body_content_type=body_content_type,
            response_content_type=response_content_type,
            query=tuple(query),
        )
        return fn

    return mark


def _operations(routes: Sequence[BaseRoute]) -> list[tuple[str, str, ApiMeta, Route]]:
    ops = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        meta = getattr(route.endpoint, "__api__", None)
        if meta is None:
            continue
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            ops.append((method.lower(), route.path, meta, route))
    return ops


def undocumented(routes: Sequence[BaseRoute]) -> list[str]:
    """`METHOD path` of every HTTP route without an @api declaration."""
    missing = []
    for route in routes:
        if isinstance(route, Route) and not hasattr(route.endpoint, "__api__"):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                missing.append(f"{method} {route.path}")
    return missing


def build_openapi(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the declared routes."""
    ops = _operations(routes)
    types: list[Any] = [ErrorResponse]
    for _, _, meta, _ in ops:
        for t in (meta.body, meta.response):
            if t is not None and not isinstance(t, dict):
                types.append(t)
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schemas = dict(zip(types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, meta, _route in ops:
        op: dict[str, Any] = {
            "summary": meta.summary,
            "operationId": f"{method}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}",
            "responses": {},
        }
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                # ids are UUIDs; other path parts (a media key) are plain strings
                "schema": {"type": "string", "format": "uuid"}
                if name.endswith("_id")
                else {"type": "string"},
            }
            for name in re.findall(r"{(\w+)(?::\w+)?}", path)
        ]
        params += [
            {"name": name, "in": "query", "required": required, "schema": {"type": type_}}
            for name, type_, required in meta.query
        ]
        if params:
            op["parameters"] = params
        if meta.auth:
            op["security"] = [{"bearer": []}, {"cookie": []}]
        if meta.body is not None:
            body_schema = meta.body if isinstance(meta.body, dict) else schemas[meta.body]
            op["requestBody"] = {
                "required": True,
                "content": {meta.body_content_type: {"schema": body_schema}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if meta.response is not None:
            schema = meta.response if isinstance(meta.response, dict) else schemas[meta.response]
            ok["content"] = {meta.response_content_type: {"schema": schema}}
        op["responses"][str(meta.status)] = ok
        errors = set(meta.errors)
        if meta.auth:
            errors |= {401}
        if meta.body is not None and meta.body_content_type == "application/json":
            errors |= {400, 413, 415, 422}
        if "{" in path:
            errors |= {404, 422}
        for status in sorted(errors):
            op["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": schemas[ErrorResponse]}},
            }
        oas_path = re.sub(r"{(\w+):\w+}", r"{\1}", path)
        paths.setdefault(oas_path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "canvasflow",
            "version": version,
            "description": "REST API of canvasflow; the websocket protocol is in docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "cf_session"},
            },
        },
    }


@api("This OpenAPI document", auth=False, response={"type": "object"})
async def openapi_json(request: Request) -> Response:
    """GET /openapi.json."""
    spec = getattr(request.app.state, "openapi", None)
    if spec is None:
        # the serving app's own route table: this module needs no import of server.app
        spec = build_openapi(list(request.app.routes), "0.1.0")
        request.app.state.openapi = spec
    return json_response(spec)
