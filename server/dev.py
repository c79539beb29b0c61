"""`canvasflow dev`: embedded services if needed, a worker and the web process, stopped in order.

Start-up:
1. the port must be free, else a message names PORT and --port;
2. what an earlier dev on this data directory left running when it was killed
   is stopped: the web process and the worker (pid files under `run/`), Redis
   on the embedded socket, Postgres from its postmaster.pid; a dev still
   running there is refused, so one data directory never has two workers;
3. embedded Postgres and Redis for whichever of DATABASE_URL / REDIS_URL is unset;
4. the worker and the web process as children, each in a session of its own,
   so that a terminal's Ctrl+C reaches only this process, which stops them in order;
5. one line once the web process accepts connections: the URL and the data directory.

Stop (SIGTERM, SIGINT, SIGHUP, or a child that exited): web, worker, Redis,
Postgres, in that order, within STOP_BUDGET_S; a second signal kills what is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import psutil

from server import embedded

#: SIGTERM to the last process gone: the whole stop stays inside this (10 s promised)
STOP_BUDGET_S = 9.0
#: how long the web process may take to accept connections (a first run creates the cluster)
READY_TIMEOUT_S = 60.0


class DevError(Exception):
    """dev cannot start; the message says why and what to do."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        # as uvicorn binds: a port only in TIME_WAIT counts as free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise DevError(f"canvasflow: cannot listen on {host}:{port}: {exc.strerror}") from None
    return False


def check_port(host: str, port: int, command: str) -> None:
    """DevError naming the variable and the flag that pick another port, if `port` is taken."""
    if not _port_busy(host, port):
        return
    spare = next((p for p in range(port + 1, port + 50) if not _port_busy(host, p)), port + 1)
    raise DevError(
        f"canvasflow: port {port} on {host} is already in use. Pick another with "
        f"PORT={spare} canvasflow {command} (or canvasflow {command} --port {spare})."
    )


class PidFiles:
    """`run/<role>.pid` under the data directory: pid and start time of each process dev runs."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "run"

    def record(self, role: str, pid: int) -> None:
        """Remember `pid` as the process of `role`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        created = psutil.Process(pid).create_time()
        (self.dir / f"{role}.pid").write_text(f"{pid} {created}\n")

    def running(self, role: str) -> psutil.Process | None:
        """The recorded process of `role` if it still runs (the same process, not a reused pid)."""
        try:
            pid, created = (self.dir / f"{role}.pid").read_text().split()
            proc = psutil.Process(int(pid))
            same = abs(proc.create_time() - float(created)) < 0.5
            # a killed process nobody has reaped yet is a zombie: it runs no more
            if same and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def forget(self, role: str) -> None:
        """Drop the record of `role`."""
        (self.dir / f"{role}.pid").unlink(missing_ok=True)


def stop_process(proc: psutil.Process | subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL."""
    with contextlib.suppress(psutil.Error, ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except (psutil.TimeoutExpired, subprocess.TimeoutExpired):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            proc.kill()
        with contextlib.suppress(psutil.Error, subprocess.TimeoutExpired):
            proc.wait(2)


def clear_leftovers(data_dir: Path, pids: PidFiles) -> list[str]:
    """Stop what a killed dev left running on `data_dir`; DevError if a dev still runs there."""
    dev = pids.running("dev")
    if dev is not None and dev.pid != os.getpid():
        raise DevError(
            f"canvasflow: canvasflow dev is already running on {data_dir} (pid {dev.pid}). "
            f"Stop it (kill {dev.pid}), or run this one on another data directory "
            "(CANVASFLOW_DATA_DIR=...)."
        )
    stopped = []
    for role in ("web", "worker"):
        proc = pids.running(role)
        if proc is not None:
            stop_process(proc, 5)
            stopped.append(f"the {role} process (pid {proc.pid})")
        pids.forget(role)
    pid = embedded.stop_redis(data_dir, 2)
    if pid is not None:
        stopped.append(f"Redis (pid {pid})")
    pid = embedded.stop_postgres(data_dir, 5)
    if pid is not None:
        stopped.append(f"Postgres (pid {pid})")
    return stopped


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _accepts(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class DevRun:
    """One `canvasflow dev`: start, supervise, stop."""

    def __init__(
        self,
        host: str,
        port: int,
        data_dir: Path,
        ensure_services: Callable[[Path], list[str]],
        worker_command: list[str],
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir.resolve()
        self.ensure_services = ensure_services
        self.worker_command = worker_command
        self.pids = PidFiles(self.data_dir)
        self.stopping = threading.Event()
        self.hurry = False
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.embedded: list[str] = []
        #: this run wrote run/dev.pid (and so removes it)
        self.recorded = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            # a second Ctrl+C: do not wait for anyone
            self.hurry = True
            for child in self.children.values():
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        self.stopping.set()

    def run(self) -> int:
        """Start everything, wait for a signal or a child's exit, stop everything; the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            check_port(self.host, self.port, "dev")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            stopped = clear_leftovers(self.data_dir, self.pids)
            self.pids.record("dev", os.getpid())
            self.recorded = True
            if stopped:
                print(
                    f"canvasflow: stopped what an earlier canvasflow dev left running on "
                    f"{self.data_dir}: {', '.join(stopped)}",
                    flush=True,
                )
            return self._serve()
        except (DevError, embedded.EmbeddedError) as exc:
            print(exc, file=sys.stderr, flush=True)
            return 1
        finally:
            self._stop()

    def _serve(self) -> int:
        self.embedded = self.ensure_services(self.data_dir)
        url_host = _connect_host(self.host)
        url = (
            f"http://{url_host}:{self.port}"
            if ":" not in url_host
            else f"http://[{url_host}]:{self.port}"
        )
        os.environ.setdefault("CANVASFLOW_PUBLIC_URL", url)
        # the terminal shows what needs attention; CANVASFLOW_LOG_LEVEL=info shows everything
        os.environ.setdefault("CANVASFLOW_LOG_LEVEL", "warning")
        self._spawn("worker", self.worker_command)
        web = [
            sys.executable,
            "-m",
            "server.cli",
            "web",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        self._spawn("web", web)
        if not self._wait_ready(url_host):
            return 0 if self.stopping.is_set() else 1
        print(f"canvasflow: open {url} - {self._where()} - Ctrl+C stops", flush=True)
        while not self.stopping.wait(0.2):
            for role, child in self.children.items():
                if child.poll() is not None:
                    print(
                        f"canvasflow: the {role} process exited (code {child.returncode}); "
                        "stopping everything",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
        return 0

    def _where(self) -> str:
        if not self.embedded:
            return f"data in DATABASE_URL and REDIS_URL, media in {self.data_dir}"
        logs = embedded.logs_dir(self.data_dir)
        names = " and ".join(self.embedded)
        return f"data in {self.data_dir} (embedded {names}; their logs in {logs})"

    def _spawn(self, role: str, args: list[str]) -> None:
        child = subprocess.Popen(args, env=os.environ.copy(), start_new_session=True)
        self.children[role] = child
        self.pids.record(role, child.pid)

    def _wait_ready(self, host: str) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping.is_set():
            for role, child in self.children.items():
                if child.poll() is not None:
                    raise DevError(
                        f"canvasflow: the {role} process exited (code {child.returncode}) "
                        "before the app was up; its output is above"
                    )
            if _accepts(host, self.port):
                return True
            if time.monotonic() > deadline:
                raise DevError(f"canvasflow: the web process did not listen in {READY_TIMEOUT_S} s")
            self.stopping.wait(0.1)
        return False

    def _stop(self) -> None:
        """Web, worker, Redis, Postgres, each given what is left of the budget."""
        deadline = time.monotonic() + STOP_BUDGET_S

        def left(share_s: float) -> float:
            return 0.0 if self.hurry else max(0.1, min(share_s, deadline - time.monotonic()))

        for role, share_s in (("web", 5.0), ("worker", 3.0)):
            child = self.children.pop(role, None)
            if child is not None:
                # only what this run started: a refused dev must not forget another's processes
                stop_process(child, left(share_s))
                self.pids.forget(role)
        if "Redis" in self.embedded:
            embedded.stop_redis(self.data_dir, left(1.0))
        if "Postgres" in self.embedded:
            embedded.stop_postgres(self.data_dir, left(2.0))
        if self.recorded:
            self.pids.forget("dev")
