"""`--profile`: py-spy samples the web process (or worker) during a measured window.

The raw collapsed stacks are written beside the run's JSON, and a summary (the functions
with the most samples, inclusive and self) goes into the JSON, so a MISS comes with the
evidence of where the time went.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: samples per second: enough for a 5-10 s window, light enough not to move the figures much
RATE_HZ = 97


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (file.py)`; line numbers split one function."""
    if " (" not in frame:
        return frame
    func, where = frame.split(" (", 1)
    return f"{func} ({where.rsplit('/', 1)[-1].split(':', 1)[0]})"


def summarize(raw_path: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares of the busiest functions in py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        return {"samples": 0}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(v / total, 3)) for k, v in counter.most_common(top)]

    return {"samples": total, "inclusive": share(inclusive), "self": share(own)}


@contextlib.contextmanager
def sampled(pid: int, out: Path | None) -> Iterator[dict[str, Any]]:
    """Sample `pid` with py-spy for the duration of the block when `out` is set."""
    summary: dict[str, Any] = {}
    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if out is None or spy is None:
        if out is not None:
            summary["error"] = "py-spy not installed (pip install -e '.[bench]')"
        yield summary
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE_HZ),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield summary
    finally:
        # SIGINT makes py-spy stop sampling and write what it has
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if out.exists():
            summary.update(summarize(out))
            summary["raw"] = str(out)
        else:
            summary["error"] = err.decode(errors="replace")[-500:]
