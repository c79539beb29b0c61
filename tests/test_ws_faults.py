"""The hub under faults: a slow client, Redis restarting, Postgres away, the process stopping."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit
from uuid import UUID

import httpx
from redis.asyncio import Redis

from common import protocol
from common.protocol import CloseCode
from db.changes import Store, publish_progress
from server.realtime import HubConfig
from tests.support.accounts import Account, sign_up
from tests.support.procs import ROOT, RedisServer, WebProc
from tests.support.services import Services, free_port, settings_for
from tests.support.ws import Model, WsClient, add_node, follow, fresh_state, hub_server, new_project

# -- a slow consumer ------------------------------------------------------------


async def test_slow_client_is_told_to_resync_and_never_delays_a_fast_one(
    services: Services, store: Store, alice: Account
) -> None:
    """A client that stops reading gets 4008; a reading client gets every event promptly."""
    project_id = await new_project(store, alice.user_id)
    async with hub_server(services, HubConfig(send_queue_max=16)) as srv:
        # the slow one: tiny receive buffer, and it reads nothing until the end
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(srv.base_url.rsplit(":", 1)[1])))
        slow = await WsClient.open(srv.base_url, alice.token, sock=sock, max_queue=1)
        fast = await WsClient.open(srv.base_url, alice.token)
        for c in (slow, fast):
            await c.subscribe(project_id)
        await fast.expect(protocol.Snapshot)
        published: dict[int, float] = {}
        received: dict[int, float] = {}

        async def read_fast() -> None:
            while len(received) < 200:
                message = await fast.expect(protocol.Event)
                received[message.seq] = time.monotonic()

        reader = asyncio.create_task(read_fast())
        blob = "x" * 32_000  # 200 events of ~32 KB: far more than the slow socket can buffer
        for i in range(200):
            event = await add_node(store, project_id, x=i, data={"prompt": blob})
            published[event.seq] = time.monotonic()
        await asyncio.wait_for(reader, 30)
        lags = [received[s] - published[s] for s in published]
        assert sorted(received) == list(range(1, 201))
        assert max(lags) < 1.0, f"the fast client lagged {max(lags):.3f} s"
        # now the slow one reads: what was already on the wire, then the close
        assert await slow.close_code(timeout_s=20) == CloseCode.SLOW_CONSUMER
        await fast.close()


# -- Redis restarts -------------------------------------------------------------


async def test_redis_restart_mid_stream_loses_nothing(
    services: Services, store: Store, alice: Account
) -> None:
    """Redis killed and restarted mid-stream: subscribers are resynced from the log, nothing lost."""
    redis_server = RedisServer().start()
    publisher = Redis.from_url(redis_server.url)
    writes = Store(db=store.db, redis=publisher, namespace=store.namespace)
    project_id = await new_project(store, alice.user_id)
    settings = None
    try:
        port = free_port()
        settings = settings_for(
            services,
            redis_url=redis_server.url,
            public_url=f"http://127.0.0.1:{port}",
            allowed_origins=(f"http://127.0.0.1:{port}",),
        )
        config = HubConfig(redis_backoff_initial_s=0.05, redis_backoff_max_s=0.3)
        async with hub_server(services, config, settings=settings) as srv:
            model = Model()
            client = await WsClient.open(srv.base_url, alice.token)
            await client.subscribe(project_id)
            model.apply(await client.expect(protocol.Snapshot))
            for i in range(10):
                await add_node(writes, project_id, x=i)
            await follow(client, model, 10)
            redis_server.stop()
            # changes while Redis is down are committed and logged, their publish fails
            for i in range(10, 20):
                await add_node(writes, project_id, x=i)
            # a client subscribing meanwhile is served from Postgres
            late = await WsClient.open(srv.base_url, alice.token)
            await late.subscribe(project_id)
            late_model = Model()
            late_model.apply(await late.expect(protocol.Snapshot, timeout_s=15))
            assert late_model.seq == 20
            redis_server.start()
            await asyncio.sleep(0.05)
            for i in range(20, 30):
                await add_node(writes, project_id, x=i)
            await follow(client, model, 30)
            await follow(late, late_model, 30)
            for c in (client, late):
                await c.close()
            for m in (model, late_model):
                assert m.gaps == [] and m.duplicates == []
            assert model.applied == list(range(1, 31))
            assert model.state() == await fresh_state(srv.base_url, alice.token, project_id)
            assert late_model.state() == model.state()
    finally:
        await publisher.aclose()
        redis_server.stop()


# -- Postgres away ---------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy to Postgres that a test can cut (as a crash or partition) and restore."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if isinstance(self.upstream, str):
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


def proxied(database_url: str, proxy_port: int) -> tuple[str, tuple[str, int] | str]:
    """The URL through the proxy, and where the proxy should connect."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    socket_dir = query.pop("host", [None])[0]
    if socket_dir:  # embedded Postgres listens on a unix socket in that directory
        upstream: tuple[str, int] | str = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
    else:
        upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    netloc = f"{user}{password}@127.0.0.1:{proxy_port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, doseq=True))), upstream


async def test_postgres_down_subscribe_gets_unavailable_and_others_are_served(
    services: Services, store: Store, alice: Account
) -> None:
    """With Postgres cut off: subscribe answers `unavailable`, live subscribers keep receiving."""
    project_id = await new_project(store, alice.user_id)
    other_id = await new_project(store, alice.user_id)
    port = free_port()
    proxy = TcpProxy(("x", 0))
    url, proxy.upstream = proxied(services.database_url, proxy.port)
    await proxy.start()
    settings = settings_for(
        services,
        database_url=url,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
    )
    try:
        async with hub_server(services, HubConfig(db_timeout_s=3), settings=settings) as srv:
            watcher = await WsClient.open(srv.base_url, alice.token)
            await watcher.subscribe(project_id)
            await watcher.expect(protocol.Snapshot)
            newcomer = await WsClient.open(srv.base_url, alice.token)
            await newcomer.send({"type": "ping"})
            await newcomer.expect(protocol.Pong)
            await proxy.cut()
            # the newcomer's subscribe needs Postgres: a clean error, the socket stays
            await newcomer.subscribe(other_id)
            error = await newcomer.expect(protocol.Error, timeout_s=10)
            assert (error.code, error.project_id) == ("unavailable", other_id)
            await newcomer.send({"type": "ping"})
            await newcomer.expect(protocol.Pong)
            # the watcher keeps getting events and ticks (the writer reaches Postgres directly)
            event = await add_node(store, project_id)
            got = await watcher.expect(protocol.Event)
            assert got.seq == event.seq
            await publish_progress(store, project_id, UUID(int=7), 0.5)
            tick = await watcher.recv()
            assert isinstance(tick, protocol.JobProgress) and tick.progress == 0.5
            # a handshake cannot check its session: told to retry later
            third = await WsClient.open(srv.base_url, alice.token)
            assert await third.close_code() == CloseCode.TRY_AGAIN_LATER
            # and once Postgres is back, subscribing works again
            await proxy.start()
            await newcomer.subscribe(other_id)
            snap = await newcomer.expect(protocol.Snapshot, timeout_s=15)
            assert snap.project_id == other_id
            for c in (watcher, newcomer):
                await c.close()
    finally:
        await proxy.cut()


# -- the process stops -------------------------------------------------------------


class Web(WebProc):
    """`canvasflow web` whose log file is closed when the test ends."""

    def start(self) -> Web:
        """Start with the log file kept, so that close() can close it."""
        self.log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=self.log_file, stderr=self.log_file
        )
        return self

    def close(self) -> None:
        """Kill if still running and close the log file."""
        self.kill()
        self.log_file.close()


async def test_sigterm_closes_websockets_with_1001(services: Services) -> None:
    """`canvasflow web` told to stop closes every websocket with 1001 (going away)."""
    web = Web(services).start()
    try:
        await asyncio.to_thread(web.wait_ready)
        async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as http:
            account = await sign_up(http)
        clients = [await WsClient.open(web.base_url, account.token) for _ in range(3)]
        for c in clients:
            await c.send({"type": "ping"})
            await c.expect(protocol.Pong)
        await asyncio.to_thread(web.stop)
        codes = [await c.close_code() for c in clients]
        assert codes == [CloseCode.GOING_AWAY] * 3, web.log()[-2000:]
        # uvicorn re-raises the SIGTERM once it has shut down: no SIGKILL was needed
        assert web.popen is not None and web.popen.returncode in (0, -signal.SIGTERM)
    finally:
        web.close()


async def test_lifespan_stop_without_a_signal_still_closes_cleanly(
    services: Services, store: Store, alice: Account
) -> None:
    """A server stopped in-process (no signal) closes its websockets with a reconnect code."""
    project_id = await new_project(store, alice.user_id)
    async with hub_server(services) as srv:
        client = await WsClient.open(srv.base_url, alice.token)
        await client.subscribe(project_id)
        await client.expect(protocol.Snapshot)
        await asyncio.to_thread(srv.stop)
        assert await client.close_code() in (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART)
