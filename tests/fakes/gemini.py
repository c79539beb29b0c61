"""A fake of the Vertex AI generateContent endpoint google-genai calls for Gemini image models.

`POST /v1beta1/[projects/P/locations/L/]publishers/google/models/{model}:generateContent`
answers, as the script says, an image inline (a real PNG drawn from the
request's seed, so different seeds give different bytes), a prompt blocked by
the safety filters, a candidate without an image, or scripted HTTP errors
first. Every request is recorded (path, headers, JSON body) so tests assert
exactly what the SDK sent.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.veo import API_KEY, Recorded, _error


def png_for(seed: int | None, size: tuple[int, int] = (64, 36)) -> bytes:
    """A small PNG whose colour the seed picks."""
    shade = 0 if seed is None else seed % 256
    buf = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, 128)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class GeminiScript:
    """What the fake answers: errors first, then the outcome."""

    #: HTTP statuses answered to the first requests, in order
    statuses: list[int] = field(default_factory=list)
    #: "image" | "blocked" | "text"
    outcome: str = "image"


class FakeGemini:
    """The fake's state: the script and the requests received."""

    def __init__(self, script: GeminiScript | None = None) -> None:
        self.lock = threading.Lock()
        self.reset(script)
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    def reset(self, script: GeminiScript | None = None) -> None:
        """Forget every request; answer as `script` says from now on."""
        with self.lock:
            self.script = script or GeminiScript()
            self.requests: list[Recorded] = []

    def generations(self) -> list[Recorded]:
        """The generateContent requests, errors included."""
        return [r for r in self.requests if r.path.endswith(":generateContent")]

    async def handle(self, request: Request) -> JSONResponse:
        """Record the request, then answer it as the script says."""
        body = await request.json() if await request.body() else None
        with self.lock:
            self.requests.append(
                Recorded(request.method, request.url.path, dict(request.headers), body)
            )
            status = self.script.statuses.pop(0) if self.script.statuses else None
        if request.headers.get("x-goog-api-key") != API_KEY:
            return _error(401, "API key not valid")
        if not request.url.path.endswith(":generateContent"):
            return _error(404, f"no route {request.url.path}")
        if status is not None:
            return _error(status, "scripted error")
        return JSONResponse(self.answer(body or {}))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response of one generateContent call."""
        if self.script.outcome == "blocked":
            return {"promptFeedback": {"blockReason": "SAFETY", "blockReasonMessage": "unsafe"}}
        if self.script.outcome == "text":
            parts: list[dict[str, Any]] = [{"text": "I cannot draw that."}]
        else:
            seed = (body.get("generationConfig") or {}).get("seed")
            data = base64.b64encode(png_for(seed)).decode()
            parts = [{"inlineData": {"mimeType": "image/png", "data": data}}]
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        }
