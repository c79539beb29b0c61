"""A fake of the Vertex AI Veo endpoints google-genai calls, scripted per test.

- `POST /v1beta1/[projects/P/locations/L/]publishers/google/models/{model}:predictLongRunning`
  starts a generation (or answers a scripted HTTP error) and returns its operation;
- `POST /v1beta1/{model resource}:fetchPredictOperation` `{"operationName": …}` reports it:
  running for `polls_until_done` fetches, then done with the scripted outcome
  (the videos inline as base64 — as many as the request's `sampleCount`, each
  different — a safety block, an operation error) or never done.

Every request is recorded (path, headers, JSON body) so tests assert exactly
what the SDK sent.
"""

from __future__ import annotations

import base64
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "fake-veo-key"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
#: a few bytes that start like an MP4; nothing downstream decodes the fake's video
VIDEO = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64


@dataclass
class VeoScript:
    """What the fake answers: errors first, then running for a while, then the outcome."""

    #: HTTP statuses answered to the first submits, in order, before one succeeds
    submit_statuses: list[int] = field(default_factory=list)
    #: HTTP statuses answered to the first polls, in order
    poll_statuses: list[int] = field(default_factory=list)
    #: fetches of an operation answered "running" before it is done
    polls_until_done: int = 1
    #: "video" | "safety" | "error" | "never"
    outcome: str = "video"
    safety_reasons: list[str] = field(default_factory=lambda: ["the prompt names a real person"])
    error: dict[str, Any] = field(
        default_factory=lambda: {"code": 3, "message": "the image could not be decoded"}
    )
    video: bytes = VIDEO


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeVeo:
    """The fake's state: the script, the requests received, the operations started."""

    def __init__(self, script: VeoScript | None = None) -> None:
        self.lock = threading.Lock()
        self.reset(script)
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    def reset(self, script: VeoScript | None = None) -> None:
        """Forget every request and operation; answer as `script` says from now on."""
        with self.lock:
            self.script = script or VeoScript()
            self.requests: list[Recorded] = []
            #: operation name → fetches so far
            self.operations: dict[str, int] = {}
            #: operation name → videos it makes (the submit's sampleCount)
            self.samples: dict[str, int] = {}
            #: OAuth access tokens accepted besides the API key (project mode)
            self.bearer_tokens: set[str] = set()

    @property
    def generations_started(self) -> int:
        """How many operations the fake started (a paid generation each)."""
        return len(self.operations)

    def submits(self) -> list[Recorded]:
        """The predictLongRunning requests, errors included."""
        return [r for r in self.requests if r.path.endswith(":predictLongRunning")]

    def polls(self) -> list[Recorded]:
        """The fetchPredictOperation requests, errors included."""
        return [r for r in self.requests if r.path.endswith(":fetchPredictOperation")]

    async def handle(self, request: Request) -> JSONResponse:
        """Record the request, then answer it as the script says."""
        body = await request.json() if await request.body() else None
        with self.lock:
            self.requests.append(
                Recorded(request.method, request.url.path, dict(request.headers), body)
            )
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.headers.get("x-goog-api-key") != API_KEY and bearer not in self.bearer_tokens:
            return _error(401, "API key not valid")
        path = request.url.path
        if request.method == "POST" and path.endswith(":predictLongRunning"):
            return self.start(path, body or {})
        if request.method == "POST" and path.endswith(":fetchPredictOperation"):
            return self.fetch(body or {})
        return _error(404, f"no route {request.method} {path}")

    def start(self, path: str, body: dict[str, Any]) -> JSONResponse:
        """A new operation, unless a submit error is scripted."""
        with self.lock:
            if self.script.submit_statuses:
                return _error(self.script.submit_statuses.pop(0), "scripted submit error")
            model = path.rsplit("/", 1)[-1].split(":")[0]
            name = (
                f"projects/fake/locations/us-central1/publishers/google/models/{model}"
                f"/operations/{uuid.uuid4()}"
            )
            self.operations[name] = 0
            self.samples[name] = int((body.get("parameters") or {}).get("sampleCount") or 1)
        return JSONResponse({"name": name})

    def fetch(self, body: dict[str, Any]) -> JSONResponse:
        """The operation's state after one more fetch."""
        name = body.get("operationName")
        with self.lock:
            if self.script.poll_statuses:
                return _error(self.script.poll_statuses.pop(0), "scripted poll error")
            if name not in self.operations:
                return _error(404, f"operation {name} not found")
            self.operations[name] += 1
            fetches = self.operations[name]
        script = self.script
        if script.outcome == "never" or fetches <= script.polls_until_done:
            return JSONResponse({"name": name, "done": False})
        done: dict[str, Any] = {"name": name, "done": True}
        if script.outcome == "error":
            done["error"] = script.error
        elif script.outcome == "safety":
            done["response"] = {
                "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": script.safety_reasons,
            }
        else:
            done["response"] = {
                "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                "videos": [
                    {
                        "bytesBase64Encoded": base64.b64encode(
                            video_bytes(script.video, i)
                        ).decode(),
                        "mimeType": "video/mp4",
                    }
                    for i in range(self.samples.get(name, 1))
                ],
            }
        return JSONResponse(done)


def video_bytes(first: bytes, index: int) -> bytes:
    """Video `index` of an operation: the script's own bytes first, then distinct variants."""
    return first if index == 0 else first + bytes([index]) * 16


def _error(status: int, message: str) -> JSONResponse:
    """A Google API error body."""
    return JSONResponse(
        {
            "error": {
                "code": status,
                "message": message,
                "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            }
        },
        status_code=status,
    )
