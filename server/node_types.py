"""The port table, for the canvas: GET /api/node-types."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from common.protocol.ports import NodeTypes, node_types
from server.openapi import api
from server.responses import json_response


@api("Every node type with its output and input ports", response=NodeTypes, auth=False)
async def list_node_types(request: Request) -> Response:
    """GET /api/node-types: common/protocol/ports.py's table, as the server checks links."""
    return json_response(node_types())
