"""uvicorn in a thread: canvasflow's app as the web process serves it, and the fakes' apps."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import uvicorn

from common.config import Settings
from server.app import create_app
from server.realtime import HubConfig
from server.serving import uvicorn_options
from server.state import AppState
from tests.support.services import free_port


class AppThread:
    """uvicorn serving `app` on a loopback port, in a thread with its own event loop.

    Used for canvasflow itself (ServerThread) and for the fakes of remote APIs.
    """

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the server accepts requests."""
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server failed to start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerThread(AppThread):
    """canvasflow's app with `settings`, as the web process serves it."""

    def __init__(self, settings: Settings, port: int, hub_config: HubConfig | None = None) -> None:
        app = create_app(settings, hub_config)
        super().__init__(
            app,
            port,
            ws_per_message_deflate=False,
            lifespan="on",
            # the same protocol, limits and proxy trust as `canvasflow web`
            **uvicorn_options(settings),
        )
        self.app = app

    @property
    def state(self) -> AppState:
        """The running app's resources (store, hub, …)."""
        state: AppState = self.app.state.canvasflow
        return state
