"""The web process: the route table and the lifespan that opens and closes its resources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from common.config import ConfigError, Settings, load_settings
from db.changes import ProjectGone, Store
from db.connect import make_database
from db.migrate import migrate
from db.nodes import NodeDataTooLarge
from server import (
    auth,
    clipboard,
    connections,
    health,
    images,
    invites,
    jobs,
    media,
    members,
    node_types,
    nodes,
    observe,
    openapi,
    projects,
    takes,
    uploads,
    usage,
)
from server.decoding import DecodeBudget
from server.errors import EXCEPTION_HANDLERS, error_response
from server.login_guard import make_login_guard
from server.present import Presenter
from server.queue_ticker import QueueTicker
from server.realtime import Hub, HubConfig
from server.realtime.endpoint import serve_websocket, websocket_endpoint
from server.state import AppState
from tasks.providers.auto import make_image_provider, make_provider
from tasks.queue import open_queue
from tasks.storage.auto import make_storage

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def _project_gone(request: Request, exc: Exception) -> Response:
    return error_response(404, "project_not_found", "No project with that id.")


async def _node_data_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NodeDataTooLarge)
    message = (
        f"A node's data may hold at most {exc.limit_bytes} bytes of JSON; "
        f"this change would make it {exc.size_bytes}."
    )
    return error_response(413, "node_data_too_large", message)


def routes() -> list[BaseRoute]:
    """Every HTTP route of the web process."""
    return [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", observe.metrics),
        Route("/openapi.json", openapi.openapi_json),
        Route("/api/auth/signup", auth.signup, methods=["POST"]),
        Route("/api/auth/login", auth.login, methods=["POST"]),
        Route("/api/auth/logout", auth.logout, methods=["POST"]),
        Route("/api/auth/me", auth.me),
        Route("/api/projects", projects.list_projects, methods=["GET"]),
        Route("/api/projects", projects.create_project, methods=["POST"]),
        Route("/api/projects/{project_id}", projects.get_project, methods=["GET"]),
        Route("/api/projects/{project_id}", projects.rename_project, methods=["PATCH"]),
        Route("/api/projects/{project_id}", projects.delete_project, methods=["DELETE"]),
        Route("/api/projects/{project_id}/members", members.list_members, methods=["GET"]),
        Route("/api/projects/{project_id}/members", members.add_member, methods=["POST"]),
        Route(
            "/api/projects/{project_id}/members/{user_id}",
            members.update_member,
            methods=["PATCH"],
        ),
        Route(
            "/api/projects/{project_id}/members/{user_id}",
            members.remove_member,
            methods=["DELETE"],
        ),
        Route("/api/projects/{project_id}/transfer", members.transfer_project, methods=["POST"]),
        Route("/api/projects/{project_id}/invites", invites.list_invites, methods=["GET"]),
        Route("/api/projects/{project_id}/invites", invites.create_invite, methods=["POST"]),
        Route(
            "/api/projects/{project_id}/invites/{invite_id}",
            invites.revoke_invite,
            methods=["DELETE"],
        ),
        Route("/api/invites/{token}/accept", invites.accept_invite, methods=["POST"]),
        Route("/api/projects/{project_id}/nodes", nodes.list_nodes, methods=["GET"]),
        Route("/api/projects/{project_id}/nodes", nodes.create_node, methods=["POST"]),
        Route("/api/nodes/{node_id}", nodes.get_node, methods=["GET"]),
        Route("/api/nodes/{node_id}", nodes.update_node, methods=["PATCH"]),
        Route("/api/nodes/{node_id}", nodes.delete_node, methods=["DELETE"]),
        Route(
            "/api/projects/{project_id}/connections", connections.list_connections, methods=["GET"]
        ),
        Route(
            "/api/projects/{project_id}/connections",
            connections.create_connection,
            methods=["POST"],
        ),
        Route(
            "/api/connections/{connection_id}", connections.delete_connection, methods=["DELETE"]
        ),
        Route("/api/projects/{project_id}/paste", clipboard.paste_nodes, methods=["POST"]),
        Route("/api/ai/generate-video", jobs.generate_video, methods=["POST"]),
        Route("/api/ai/generate-image", images.generate_image, methods=["POST"]),
        Route("/api/ai/estimate", jobs.estimate_video, methods=["POST"]),
        Route("/api/ai/estimate-image", images.estimate_image, methods=["POST"]),
        Route("/api/me/usage", usage.get_usage, methods=["GET"]),
        Route("/api/node-types", node_types.list_node_types, methods=["GET"]),
        Route("/api/nodes/{node_id}/takes", takes.list_takes, methods=["GET"]),
        Route("/api/nodes/{node_id}/active-take", takes.set_active_take, methods=["PUT"]),
        Route("/api/takes/{take_id}", takes.delete_take, methods=["DELETE"]),
        Route("/api/ai/jobs/{job_id}", jobs.get_job_status, methods=["GET"]),
        Route("/api/ai/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
        Route("/api/ai/nodes/{node_id}/jobs/latest", jobs.latest_job, methods=["GET"]),
        Route("/api/projects/{project_id}/uploads", uploads.upload_image, methods=["POST"]),
        Route("/media/{key:path}", media.get_media, methods=["GET", "HEAD"]),
        WebSocketRoute("/ws", websocket_endpoint),
        # the canvas itself, last so every route above wins
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="static"),
    ]


class App(Starlette):
    """canvasflow's Starlette app, with `GET /ws` served from the entry itself."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websockets on /ws go straight to the endpoint; everything else through Starlette."""
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            # what Starlette's own entry does first, so app_state() finds the app
            scope["app"] = self
            await serve_websocket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, hub_config: HubConfig | None = None) -> Starlette:
    """The ASGI app. DATABASE_URL and REDIS_URL must be set (`canvasflow dev` sets them).

    `hub_config` lets tests shrink the hub's limits and intervals.
    """
    settings = settings or load_settings()
    if not settings.database_url or not settings.redis_url:
        raise ConfigError(
            "DATABASE_URL and REDIS_URL must be set; `canvasflow dev` starts embedded ones for you."
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # 1. Postgres: connect, then bring the schema up to date (safe from many processes)
        assert settings.database_url and settings.redis_url
        db = make_database(settings.database_url, acquire_timeout_s=settings.db_acquire_timeout_s)
        await db.connect()
        await migrate(db)
        # 2. Redis: one client for publishing, rate limits and readiness
        redis = Redis.from_url(settings.redis_url)
        store = Store(db=db, redis=redis, namespace=settings.namespace)
        storage = make_storage(settings)
        presenter = Presenter(storage, settings.media_url_ttl_s)
        # 3. the websocket hub: one Redis pub/sub connection for every websocket here
        hub_settings = HubConfig(
            send_queue_max_bytes=settings.ws_send_queue_max_bytes,
            write_timeout_s=settings.ws_write_timeout_s,
        )
        hub = Hub(store, presenter, settings.redis_url, hub_config or hub_settings)
        state = AppState(
            settings=settings,
            store=store,
            storage=storage,
            presenter=presenter,
            # the queue client connects lazily: a Redis outage delays enqueues, never startup
            queue=open_queue(settings.redis_url, settings.namespace),
            # the provider only checks requests here; workers generate
            provider=make_provider(settings),
            image_provider=make_image_provider(settings),
            hub=hub,
            login_guard=make_login_guard(settings, redis),
            # one max-size image decoded at a time, or several smaller ones (server/decoding.py)
            decode_budget=DecodeBudget(settings.max_upload_pixels),
        )
        await hub.start()
        # 4. queue positions and ETAs of pending jobs, live (one web process ticks at a time)
        ticker = QueueTicker(store, settings.worker_max_jobs)
        ticker.start()
        app.state.canvasflow = state
        try:
            yield
        finally:
            # 5. close in reverse order of opening
            await ticker.stop()
            await hub.stop()
            await state.queue.aclose()
            await redis.aclose()
            await db.disconnect()

    handlers = dict(EXCEPTION_HANDLERS)
    handlers[ProjectGone] = _project_gone
    handlers[NodeDataTooLarge] = _node_data_too_large
    return App(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers=handlers,
        middleware=[Middleware(observe.RequestObserver)],
    )
