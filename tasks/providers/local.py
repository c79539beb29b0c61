"""The local renderer: real H.264 MP4s drawn on the CPU from the prompt and the inputs.

The offline default when GEMINI_API_KEY is unset. It behaves like a remote
provider: `submit` starts a render and returns an operation name, `poll`
reports frames done / total, `download` hands over the files. Operations live
in this process only, so a worker that takes over a job from a dead one gets
OperationLost and submits again, exactly the path a provider that forgot an
operation takes.

It honours every choice of a request (tasks/providers/clip.py draws each
mode): `number_of_videos` variants, variant i with seed + i (a seed is
picked when the request has none, and reported on each output), audio,
enhance_prompt, person_generation, first/last frame, reference images and
extension. It refuses what the configured Veo model could not make (the same
capability table), so a canvas that works offline works in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tasks.providers.base import (
    InvalidRequest,
    OperationLost,
    PollResult,
    ProviderError,
    VideoOutput,
    VideoRequest,
    output_duration_s,
)
from tasks.providers.capabilities import check_request
from tasks.providers.clip import FPS, RenderStopped, render_video
from tasks.providers.drawing import frame_size

__all__ = ["FPS", "LocalRenderer", "frame_size", "render_video"]

log = logging.getLogger(__name__)

RESOLUTIONS = ("720p", "1080p")
DURATIONS_S = (4, 6, 8)
ASPECT_RATIOS = ("16:9", "9:16")
#: the model whose limits the local renderer keeps when none is configured
DEFAULT_MODEL = "veo-3.1-generate-001"
_SEEDS = 2**32


def variants(request: VideoRequest) -> list[VideoRequest]:
    """One single-video request per output: variant i has seed + i (a seed is picked if none)."""
    seed = request.seed if request.seed is not None else secrets.randbelow(_SEEDS)
    return [
        msgspec.structs.replace(request, seed=(seed + i) % _SEEDS, number_of_videos=1)
        for i in range(request.number_of_videos)
    ]


@dataclass
class _Operation:
    """One render of this process."""

    total: int
    folder: Path
    outputs: list[VideoOutput] = field(default_factory=list)
    done_frames: int = 0
    last_poll: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


class LocalRenderer:
    """Renders in a thread of this process; see the module docstring."""

    name = "local"
    #: the worker polls this often; a local render is cheap to ask about
    poll_interval_s = 0.2

    def __init__(
        self,
        work_dir: Path | None = None,
        abandon_after_s: float = 120.0,
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.work_dir = work_dir
        #: the Veo model whose limits requests are checked against
        self.model = model
        #: a render nobody polled for this long stops (its job was cancelled or its worker left)
        self.abandon_after_s = abandon_after_s
        self.operations: dict[str, _Operation] = {}
        #: how many renders were started, for tests that prove a job ran once
        self.submitted = 0

    def check(self, request: VideoRequest) -> None:
        """Refuse what this renderer, or the configured model, cannot make (checked at submit)."""
        if request.resolution not in RESOLUTIONS:
            raise InvalidRequest(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if request.duration_s not in DURATIONS_S:
            raise InvalidRequest(f"duration must be one of {', '.join(map(str, DURATIONS_S))} s")
        if request.aspect_ratio not in ASPECT_RATIOS:
            raise InvalidRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        check_request(self.model, request)

    async def submit(self, request: VideoRequest) -> str:
        """Start rendering every variant in a thread and return the operation's name."""
        self.check(request)
        name = f"local-{uuid.uuid4().hex}"
        folder = Path(tempfile.mkdtemp(prefix="cf-render-", dir=self.work_dir))
        per_video = (request.extend_duration_s or 0) * FPS + output_duration_s(request) * FPS
        op = _Operation(total=per_video * request.number_of_videos, folder=folder)
        self.operations[name] = op
        self.submitted += 1
        op.task = asyncio.create_task(asyncio.to_thread(self._render_all, op, request))
        op.task.add_done_callback(lambda task: self._finished(name, task))
        return name

    def _render_all(self, op: _Operation, request: VideoRequest) -> None:
        """Render the variants one after the other (blocking: runs in a thread)."""
        for i, variant in enumerate(variants(request)):
            before = op.done_frames

            def on_frame(done: int, total: int, before: int = before) -> bool:
                op.done_frames = before + done
                return time.monotonic() - op.last_poll < self.abandon_after_s

            path = op.folder / f"video-{i}.mp4"
            frames = render_video(variant, path, on_frame)
            op.outputs.append(
                VideoOutput(path=path, seed=variant.seed, duration_s=round(frames / FPS))
            )

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        # an abandoned render has nobody to report to: drop it and its file
        if not task.cancelled() and isinstance(task.exception(), RenderStopped):
            log.info("render %s abandoned: %s", name, task.exception())
            self._forget(name)

    def _forget(self, name: str) -> None:
        op = self.operations.pop(name, None)
        if op is not None:
            shutil.rmtree(op.folder, ignore_errors=True)

    def _get(self, name: str) -> _Operation:
        op = self.operations.get(name)
        if op is None:
            raise OperationLost(f"this worker has no render {name!r} (it may have restarted)")
        return op

    async def poll(self, operation: str) -> PollResult:
        """Frames done / total; raises the render's error if it failed."""
        op = self._get(operation)
        op.last_poll = time.monotonic()
        assert op.task is not None
        if not op.task.done():
            # 1.0 only once the file is finished (the encoder flushes after the last frame)
            return PollResult(done=False, progress=min(op.done_frames / op.total, 0.99))
        exc = op.task.exception()
        if exc is not None:
            self._forget(operation)
            if isinstance(exc, ProviderError):
                raise exc
            raise ProviderError(f"local render failed: {type(exc).__name__}: {exc}") from exc
        return PollResult(done=True, progress=1.0)

    async def download(self, operation: str, dest_dir: Path) -> list[VideoOutput]:
        """Move the finished MP4s into `dest_dir` and forget the operation."""
        op = self._get(operation)
        assert op.task is not None
        if not op.task.done() or op.task.exception() is not None:
            raise ProviderError(f"render {operation!r} has no finished video")
        moved = []
        for out in op.outputs:
            dest = dest_dir / out.path.name
            await asyncio.to_thread(shutil.move, out.path, dest)
            moved.append(msgspec.structs.replace(out, path=dest))
        self._forget(operation)
        return moved

    async def cancel(self, operation: str) -> None:
        """Stop a render nobody will collect (its job was cancelled or its run stopped)."""
        op = self.operations.get(operation)
        if op is not None:
            # the render checks this on its next frame and stops; its files go with it
            op.last_poll = -math.inf
            if op.task is not None and op.task.done():
                self._forget(operation)

    async def aclose(self) -> None:
        """Stop every render and remove their files (worker shutdown)."""
        for name, op in list(self.operations.items()):
            # renders check this on every frame and stop
            op.last_poll = -math.inf
            if op.task is not None:
                with contextlib.suppress(BaseException):
                    await op.task
            self._forget(name)
