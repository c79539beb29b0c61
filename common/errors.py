"""The base of every error canvasflow answers with: a machine-readable code and a message.

CanvasflowError(code, message)
├── server.errors.ApiError        + an HTTP status: REST answers {"error": {code, message}}
├── common.protocol.ProtocolError   a client frame that cannot be acted on: an `error` frame
├── server.realtime.HubError        a subscription that cannot be served: an `error` frame
└── tasks.providers.Unsupported     a request the configured model cannot make: a 422
"""

from __future__ import annotations


class CanvasflowError(Exception):
    """An error a client is told about: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
