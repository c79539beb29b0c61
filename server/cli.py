"""The `canvasflow` command: dev, web, worker, migrate, watch."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

from common.config import load_settings


def ensure_services(data_dir: Path) -> list[str]:
    """Start embedded Postgres / Redis for whichever of DATABASE_URL / REDIS_URL is unset.

    Sets the variable to the embedded server's URL; returns the names of those started.
    """
    from server import embedded

    started = []
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.start_postgres(data_dir)
        started.append("Postgres")
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded.start_redis(data_dir)
        started.append("Redis")
    return started


def run_web(host: str, port: int, workers: int = 1, reuse_port: bool = False) -> None:
    """Serve the web process with uvicorn.

    Several web processes can share one port: `workers` > 1 has uvicorn fork that many
    from one listening socket; `reuse_port` binds this process's socket with
    SO_REUSEPORT, so independently started `canvasflow web --reuse-port` processes share
    the port and the kernel spreads new connections evenly over them. Each process runs
    its own hub; Redis carries every event to all of them.
    """
    import uvicorn

    from server.serving import uvicorn_options

    options: dict[str, Any] = dict(
        factory=True,
        # many small JSON frames: per-message deflate costs ~50 KiB a socket for little gain
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        timeout_graceful_shutdown=10,
        log_level=load_settings().log_level,
        # our JSON logging is configured already; uvicorn must not replace it
        log_config=None,
        access_log=False,
        # trusted proxies, the connection limit and the header-read timeout (server/serving.py)
        **uvicorn_options(load_settings()),
    )
    if reuse_port:
        config = uvicorn.Config("server.app:create_app", workers=workers, **options)
        sock = reuse_port_socket(host, port)
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
        return
    uvicorn.run("server.app:create_app", host=host, port=port, workers=workers, **options)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) that other processes may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_command() -> list[str]:
    """The worker's command line, as in the Procfile."""
    return [sys.executable, "-m", "server.cli", "worker"]


def cmd_dev(args: argparse.Namespace) -> int:
    """Everything on one machine: embedded services when needed, one worker, the web process."""
    from server.dev import DevRun

    settings = load_settings()
    run = DevRun(args.host, args.port, Path(settings.data_dir), ensure_services, worker_command())
    return run.run()


def cmd_web(args: argparse.Namespace) -> int:
    """Only the web process (production: DATABASE_URL and REDIS_URL set)."""
    from server.dev import DevError, check_port

    try:
        # a port shared on purpose (SO_REUSEPORT) is busy by design
        if not args.reuse_port:
            check_port(args.host, args.port, "web")
    except DevError as exc:
        print(exc, file=sys.stderr)
        return 1
    run_web(args.host, args.port, args.workers, args.reuse_port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Only a worker (production: DATABASE_URL and REDIS_URL set)."""
    from tasks.worker import WorkerSettings
    from tasks.worker_loop import run_worker

    run_worker(WorkerSettings)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply schema.sql and print the schema version."""
    from db.connect import make_database
    from db.migrate import migrate

    settings = load_settings()
    if not settings.database_url:
        ensure_services(Path(settings.data_dir))
        settings = load_settings()
    assert settings.database_url

    async def run() -> int:
        db = make_database(settings.database_url or "")
        await db.connect()
        try:
            return await migrate(db)
        finally:
            await db.disconnect()

    print(f"schema version {asyncio.run(run())}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a project's events over the websocket (server/watch.py)."""
    from server.watch import main_watch

    return main_watch(args.project_id, args.url, args.token, args.json)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `canvasflow` command."""
    parser = argparse.ArgumentParser(prog="canvasflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = load_settings()
    dev = sub.add_parser("dev", help="run web + worker, with embedded Postgres/Redis if unset")
    dev.add_argument("--host", default=defaults.dev_host, help="default $HOST, else 127.0.0.1")
    dev.add_argument("--port", type=int, default=defaults.port, help="default $PORT, else 8000")
    dev.set_defaults(func=cmd_dev)
    web = sub.add_parser("web", help="run the web process")
    web.add_argument("--host", default=defaults.host, help="default $HOST, else 0.0.0.0")
    web.add_argument("--port", type=int, default=defaults.port, help="default $PORT, else 8000")
    web.add_argument(
        "--workers", type=int, default=1, help="web processes forked on one socket (default 1)"
    )
    web.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT: several canvasflow web processes share the port",
    )
    web.set_defaults(func=cmd_web)
    worker = sub.add_parser("worker", help="run an arq worker")
    worker.set_defaults(func=cmd_worker)
    mig = sub.add_parser("migrate", help="apply schema.sql")
    mig.set_defaults(func=cmd_migrate)
    watch = sub.add_parser("watch", help="print a project's live events, resuming after drops")
    watch.add_argument("project_id")
    watch.add_argument("--url", help="server address (default $CANVASFLOW_URL or the public URL)")
    watch.add_argument("--token", help="a session token (default $CANVASFLOW_TOKEN)")
    watch.add_argument("--json", action="store_true", help="print the raw frames, one a line")
    watch.set_defaults(func=cmd_watch)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `canvasflow` console script."""
    from common.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(load_settings().log_level)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
