"""JSON responses encoded by msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_encode = msgspec.json.Encoder().encode


def json_response(content: Any, status: int = 200) -> Response:
    """A JSON response of any msgspec-encodable value."""
    return Response(_encode(content), status_code=status, media_type="application/json")
