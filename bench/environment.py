"""What the figures were measured on: CPU, cores, load, Python, library and server versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: the libraries whose versions move the figures
LIBRARIES = (
    "websockets",
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "arq",
    "redis",
    "hiredis",
    "asyncpg",
    "msgspec",
    "httpx",
    "psutil",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> dict[str, Any]:
    """`uptime`'s load averages, so a reader can tell a busy machine from a slow program."""
    one, five, fifteen = os.getloadavg()
    return {
        "load_1m": round(one, 2),
        "load_5m": round(five, 2),
        "load_15m": round(fifteen, 2),
        "uptime": _run(["uptime"]),
    }


def _run(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def library_versions() -> dict[str, str]:
    """Installed versions of LIBRARIES (absent ones are named so)."""
    out: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def capture(server_versions: dict[str, str]) -> dict[str, Any]:
    """The whole environment record of a run."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "libraries": library_versions(),
        "servers": server_versions,
        "git_commit": _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "load_at_start": load_average(),
    }
