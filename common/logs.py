"""Structured logs: one JSON object a line, with the ids of what is being worked on.

The ids live in context variables, so every log line written while serving a
request or running a job carries them without being passed around.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any

import msgspec

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
project_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("project_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

_CONTEXT = (
    ("request_id", request_id),
    ("user_id", user_id),
    ("project_id", project_id),
    ("job_id", job_id),
)
# attributes every LogRecord has; anything else passed with `extra=` is logged as a field
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_encode = msgspec.json.Encoder(enc_hook=str).encode
# debug logs of libraries (the websocket handshake) print request headers: credentials go
_SECRETS = re.compile(r"(?i)(authorization:\s*\w+\s+|cookie:[^\n]*?\bcf_session=)[^\s;\"']+")


def redact(text: str) -> str:
    """`text` with the values of Authorization headers and session cookies replaced."""
    return _SECRETS.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                out[name] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out).decode()


def configure_logging(level: str = "info") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log is replaced by our own request line, which has ids and the route
    for name in ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
