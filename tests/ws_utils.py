"""Websocket helpers for the hub tests: a real `websockets` client, a strict local model, servers.

`WsClient` decodes every frame with server.protocol (so each test also checks
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
from typing import Any
from uuid import UUID

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection, connect

from common.config import Settings
from db import connections as connection_q
from db import nodes as node_q
from db import projects as project_q
from db.changes import Event, Store, publish_change
from db.nodes import NodeType
from server import protocol
from server.hub import HubConfig
from tests.conftest import ServerThread, Services, free_port, settings_for


def ws_url(base_url: str) -> str:
    """The websocket address of a server."""
    return base_url.replace("http://", "ws://", 1) + "/ws"


class WsClient:
    """One websocket connection, its frames decoded with server.protocol."""

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

    async def expect(self, kind: type[Any], timeout_s: float = 10) -> Any:
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
    """A client's copy of one project, kept by the rules of the protocol."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.nodes: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.applied: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self.duplicates: list[int] = []
        self.snapshots = 0
        self.deleted = False

    def apply(self, message: protocol.ServerMessage) -> None:
        """Apply a snapshot, a subscribed confirmation or an event."""
        if isinstance(message, protocol.Snapshot):
            self.snapshots += 1
            self.seq = message.seq
            self.nodes = {n["id"]: _plain_node(n) for n in message.nodes}
            self.connections = {c["id"]: c for c in message.connections}
        elif isinstance(message, protocol.Subscribed):
            assert self.seq == message.seq, f"subscribed at {message.seq}, model at {self.seq}"
        elif isinstance(message, protocol.Event):
            assert self.seq is not None, "an event before any snapshot"
            if message.seq <= self.seq:
                self.duplicates.append(message.seq)
                return
            if message.seq != self.seq + 1:
                self.gaps.append((self.seq, message.seq))
                return
            self._apply_event(message.kind, message.data)
            self.seq = message.seq
            self.applied.append(message.seq)

    def _apply_event(self, kind: str, data: Any) -> None:
        if kind in ("node.created", "node.updated"):
            self.nodes[data["node"]["id"]] = _plain_node(data["node"])
        elif kind == "node.deleted":
            self.nodes.pop(data["node_id"], None)
            for cid in data["connection_ids"]:
                self.connections.pop(cid, None)
        elif kind == "connection.created":
            self.connections[data["connection"]["id"]] = data["connection"]
        elif kind == "connection.deleted":
            self.connections.pop(data["connection_id"], None)
        elif kind == "project.deleted":
            self.deleted = True

    def state(self) -> tuple[int | None, dict[str, Any], dict[str, Any]]:
        """What must equal the server's state: seq, nodes, connections."""
        return self.seq, self.nodes, self.connections


def _plain_node(node: dict[str, Any]) -> dict[str, Any]:
    """A node without its signed URLs (they differ each time they are signed)."""
    data = {k: v for k, v in node["data"].items() if not k.endswith("_url")}
    return {**node, "data": data}


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
) -> Event:
    """A node.created change."""

    async def apply() -> dict[str, Any]:
        node = await node_q.insert_node(store.db, project_id, NodeType.PROMPT, x, 0, data or {})
        return {"node": node}

    event, _ = await publish_change(store, project_id, "node.created", apply)
    return event


async def move_node(store: Store, project_id: UUID, node_id: UUID | str, x: float) -> Event:
    """A node.updated change."""

    async def apply() -> dict[str, Any]:
        return {"node": await node_q.update_node(store.db, UUID(str(node_id)), x=x)}

    event, _ = await publish_change(store, project_id, "node.updated", apply)
    return event


async def remove_node(store: Store, project_id: UUID, node_id: UUID | str) -> Event:
    """A node.deleted change."""

    async def apply() -> dict[str, Any]:
        ids = await node_q.delete_node(store.db, UUID(str(node_id)))
        return {"node_id": UUID(str(node_id)), "connection_ids": ids}

    event, _ = await publish_change(store, project_id, "node.deleted", apply)
    return event


async def connect_nodes(
    store: Store, project_id: UUID, source: UUID | str, target: UUID | str
) -> Event:
    """A connection.created change."""

    async def apply() -> dict[str, Any]:
        conn = await connection_q.insert_connection(
            store.db, project_id, UUID(str(source)), UUID(str(target))
        )
        return {"connection": conn}

    event, _ = await publish_change(store, project_id, "connection.created", apply)
    return event


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
        super().__init__(settings, port)
        config = self.server.config
        if hub_config is not None:
            config.app.state.hub_config = hub_config  # type: ignore[union-attr]
        for name, value in uvicorn_options.items():
            setattr(config, name, value)

    @property
    def hub(self) -> Any:
        """The running app's hub."""
        return self.server.config.app.state.hub  # type: ignore[union-attr]


@asynccontextmanager
async def hub_server(
    services: Services,
    hub_config: HubConfig | None = None,
    settings: Settings | None = None,
    **uvicorn_options: Any,
) -> AsyncIterator[HubServer]:
    """A dedicated web process on a spare port, stopped at the end."""
    port = free_port()
    settings = settings or settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
    )
    srv = HubServer(settings, port, hub_config, **uvicorn_options)
    await asyncio.to_thread(srv.start)
    try:
        yield srv
    finally:
        await asyncio.to_thread(srv.stop)
