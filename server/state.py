"""What the web process holds while it runs, typed: `app_state(request).store`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from arq.connections import ArqRedis
from starlette.requests import HTTPConnection

from common.config import Settings
from db.changes import Store
from server.present import Presenter
from tasks.providers.base import VideoProvider
from tasks.providers.images import ImageProvider
from tasks.storage.base import Storage

if TYPE_CHECKING:
    from server.decoding import DecodeBudget
    from server.login_guard import LoginGuard
    from server.realtime.hub import Hub


@dataclass
class AppState:
    """The web process's resources, opened by the lifespan in server/app.py."""

    settings: Settings
    store: Store
    storage: Storage
    presenter: Presenter
    #: the arq client jobs are enqueued with (it connects lazily)
    queue: ArqRedis
    #: checks requests at submit; workers generate
    provider: VideoProvider
    #: checks image requests at submit; workers generate
    image_provider: ImageProvider
    hub: Hub
    #: the log-in limiter (Redis, with an in-process fallback while Redis is down)
    login_guard: LoginGuard
    #: the pixels being decoded at once, across uploads (server/decoding.py)
    decode_budget: DecodeBudget


def app_state(conn: HTTPConnection) -> AppState:
    """The resources of the app serving `conn` (a request or a websocket)."""
    state: AppState = conn.app.state.canvasflow
    return state
