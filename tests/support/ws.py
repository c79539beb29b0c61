"""Websocket helpers for the hub tests: a real `websockets` client, a strict local model, servers.

`WsClient` decodes every frame with common.protocol (so each test also checks
the wire shapes). `Model` applies snapshots and events the way a client must:
an event is applied only when its seq is the model's seq + 1, and anything
else is recorded as a gap or a duplicate, so a test can assert there were
none. `HubServer` is a ServerThread with its own hub settings and uvicorn
options. The change helpers go straight through db.changes.publish_change,
which is the one path every REST change takes too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection, connect

from common import protocol
from common.config import Settings
from common.protocol.events import Event
from common.protocol.mirror import Mirror, ProjectState
from db import connections as connection_q
from db import nodes as node_q
from db import projects as project_q
from db.changes import Store, publish_change
from db.nodes import NodeType
from server.realtime import Hub, HubConfig
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for


def ws_url(base_url: str) -> str:
    """The websocket address of a server."""
    return base_url.replace("http://", "ws://", 1) + "/ws"


M = TypeVar("M")


class WsClient:
    """One websocket connection, its frames decoded with common.protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls,
        base_url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> WsClient:
        """Connect (Bearer auth when `token` is given)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("open_timeout", 10)
        ws = await connect(
            ws_url(base_url),
            additional_headers=all_headers,
            compression=None,
            proxy=None,
            **kwargs,
        )
        return cls(ws)

    async def send(self, frame: dict[str, Any] | str) -> None:
        """Send a frame (a dict is JSON-encoded; a str goes as is)."""
        await self.ws.send(frame if isinstance(frame, str) else msgspec.json.encode(frame).decode())

    async def subscribe(self, project_id: UUID | str, since: int | None = None) -> None:
        """Send a subscribe frame."""
        frame: dict[str, Any] = {"type": "subscribe", "project_id": str(project_id)}
        if since is not None:
            frame["since"] = since
        await self.send(frame)

    async def recv(self, timeout_s: float = 10) -> protocol.ServerMessage:
        """The next frame."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        assert isinstance(raw, str), "the server sends text frames only"
        return protocol.decode_server(raw)

    async def expect(self, kind: type[M], timeout_s: float = 10) -> M:
        """The next frame other than a progress tick, which must be a `kind`."""
        while True:
            message = await self.recv(timeout_s)
            if not isinstance(message, protocol.JobProgress):
                assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
                return message

    async def close_code(self, timeout_s: float = 10) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed as exc:
            return None if exc.rcvd is None else exc.rcvd.code
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close from our side."""
        await self.ws.close()


class Model:
    """A client's copy of one project, kept by the shared client rules (common/protocol/mirror.py)."""

    #: whether `state()` includes the jobs (a snapshot's latest jobs and every job event's)
    with_jobs = False

    def __init__(self) -> None:
        self.mirror = Mirror()
        self.project: ProjectState | None = None
        #: frames the rules asked to send (a resubscribe after a gap)
        self.to_send: list[protocol.ClientMessage] = []

    def apply(self, message: protocol.ServerMessage) -> None:
        """Apply a snapshot, a subscribed confirmation or an event."""
        if self.project is None:
            project_id = getattr(message, "project_id", None)
            assert project_id is not None, f"{message!r} before any project frame"
            self.mirror.subscribe(project_id)
            self.project = self.mirror.projects[project_id]
        if isinstance(message, protocol.Subscribed):
            assert self.project.seq == message.seq, (
                f"subscribed at {message.seq}, model at {self.project.seq}"
            )
        if isinstance(message, protocol.Event):
            assert self.project.seq is not None, "an event before any snapshot"
        step = self.mirror.receive(message)
        self.to_send += step.send
        # a test client resubscribes by itself: the model keeps applying meanwhile
        self.project.pending = False

    @property
    def seq(self) -> int | None:
        """The seq the copy reflects."""
        return None if self.project is None else self.project.seq

    @property
    def applied(self) -> list[int]:
        """Seqs applied, in order."""
        return [] if self.project is None else self.project.applied

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """(held seq, received seq) of each gap seen."""
        return [] if self.project is None else self.project.gaps

    @property
    def duplicates(self) -> list[int]:
        """Seqs received twice."""
        return [] if self.project is None else self.project.duplicates

    @property
    def snapshots(self) -> int:
        """Snapshots applied."""
        return 0 if self.project is None else self.project.snapshots

    @property
    def deleted(self) -> bool:
        """Whether the project was deleted."""
        return self.project is not None and self.project.deleted

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """Nodes by id, as plain JSON values without signed URLs."""
        if self.project is None:
            return {}
        return {str(k): _plain_node(n) for k, n in self.project.nodes.items()}

    def state(self) -> tuple[int | None, dict[str, Any], dict[str, Any]]:
        """What must equal the server's state: seq, nodes (and jobs), connections."""
        if self.project is None:
            return None, {}, {}
        connections = {str(k): msgspec.to_builtins(c) for k, c in self.project.connections.items()}
        nodes: dict[str, Any] = self.nodes
        if self.with_jobs:
            nodes["jobs"] = {str(k): _plain_job(j) for k, j in self.project.jobs.items()}
        return self.project.seq, nodes, connections


def _plain_node(node: protocol.Node) -> dict[str, Any]:
    """A node as JSON values, without its signed URLs (they differ each time they are signed)."""
    plain: dict[str, Any] = msgspec.to_builtins(node)
    plain["data"] = {k: v for k, v in plain["data"].items() if not k.endswith("_url")}
    return plain


def _plain_job(job: protocol.JobStatusResponse) -> dict[str, Any]:
    """A job without its signed URLs and progress (ticks are not seq'd state)."""
    plain: dict[str, Any] = msgspec.to_builtins(job)
    result = plain.pop("result") or {}
    plain.pop("progress")
    return {**plain, "result": {k: v for k, v in result.items() if not k.endswith("_url")}}


async def follow(client: WsClient, model: Model, until_seq: int, timeout_s: float = 20) -> None:
    """Apply frames to `model` until it reaches `until_seq`."""
    deadline = time.monotonic() + timeout_s
    while model.seq is None or model.seq < until_seq:
        left = deadline - time.monotonic()
        assert left > 0, f"model stuck at seq {model.seq}, waiting for {until_seq}"
        model.apply(await client.recv(left))


async def fresh_state(
    base_url: str, token: str, project_id: UUID
) -> tuple[int | None, dict[str, Any], dict[str, Any]]:
    """The project's state from a new connection's snapshot."""
    client = await WsClient.open(base_url, token)
    try:
        await client.subscribe(project_id)
        model = Model()
        model.apply(await client.expect(protocol.Snapshot))
        return model.state()
    finally:
        await client.close()


# -- changes, straight through the one change path ------------------------------


async def new_project(store: Store, owner_id: str | UUID, name: str = "p") -> UUID:
    """A project of `owner_id`."""
    project = await project_q.create_project(store.db, UUID(str(owner_id)), name)
    return project.id


async def add_node(
    store: Store, project_id: UUID, x: float = 0, data: dict[str, Any] | None = None
) -> Event[protocol.NodeCreated]:
    """A node.created change."""

    async def apply(seq: int) -> protocol.NodeCreated:
        node = await node_q.insert_node(
            store.db, project_id, NodeType.PROMPT, x, 0, data or {}, version=seq
        )
        return protocol.NodeCreated(node=node)

    return await publish_change(store, project_id, apply)


async def move_node(
    store: Store, project_id: UUID, node_id: UUID | str, x: float
) -> Event[protocol.NodeUpdated]:
    """A node.updated change."""

    async def apply(seq: int) -> protocol.NodeUpdated:
        node = await node_q.update_node(store.db, UUID(str(node_id)), version=seq, x=x)
        assert node is not None
        return protocol.NodeUpdated(node=node)

    return await publish_change(store, project_id, apply)


async def remove_node(
    store: Store, project_id: UUID, node_id: UUID | str
) -> Event[protocol.NodeDeleted]:
    """A node.deleted change."""

    async def apply(seq: int) -> protocol.NodeDeleted:
        ids = await node_q.delete_node(store.db, UUID(str(node_id)))
        return protocol.NodeDeleted(node_id=UUID(str(node_id)), connection_ids=ids)

    return await publish_change(store, project_id, apply)


async def connect_nodes(
    store: Store,
    project_id: UUID,
    source: UUID | str,
    target: UUID | str,
    target_port: str = "prompt",
) -> Event[protocol.ConnectionCreated]:
    """A connection.created change (written directly: the port rules are the route's)."""

    async def apply(seq: int) -> protocol.ConnectionCreated:
        conn = await connection_q.insert_connection(
            store.db, project_id, UUID(str(source)), UUID(str(target)), target_port, version=seq
        )
        return protocol.ConnectionCreated(connection=conn)

    return await publish_change(store, project_id, apply)


# -- servers of a test's own ---------------------------------------------------


class HubServer(ServerThread):
    """A ServerThread with hub settings and uvicorn options of a test's own."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        hub_config: HubConfig | None = None,
        **uvicorn_options: Any,
    ) -> None:
        super().__init__(settings, port, hub_config)
        for name, value in uvicorn_options.items():
            setattr(self.server.config, name, value)

    @property
    def hub(self) -> Hub:
        """The running app's hub."""
        return self.state.hub


@asynccontextmanager
async def hub_server(
    services: Services,
    hub_config: HubConfig | None = None,
    settings: Settings | None = None,
    setting_overrides: dict[str, Any] | None = None,
    **uvicorn_options: Any,
) -> AsyncIterator[HubServer]:
    """A dedicated web process on a spare port, stopped at the end."""
    port = free_port()
    settings = settings or settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        **(setting_overrides or {}),
    )
    srv = HubServer(settings, port, hub_config, **uvicorn_options)
    await asyncio.to_thread(srv.start)
    try:
        yield srv
    finally:
        await asyncio.to_thread(srv.stop)
