"""Security checks the other test files do not already make (docs/deploy.md, "Security", lists them all)."""

from __future__ import annotations

import time

import httpx
import pytest

from common import protocol
from common.protocol import CloseCode
from db.changes import Store
from server.realtime import HubConfig
from tests.support.accounts import Account, sign_up
from tests.support.services import Services
from tests.support.ws import HubServer, WsClient, add_node, hub_server, new_project

#: sessions are re-checked on every hub sweep; the tests sweep often
FAST_SWEEP = HubConfig(sweep_interval_s=0.2)


async def log_in(http: httpx.AsyncClient, who: Account) -> str:
    """A second session of `who`; returns its token."""
    r = await http.post("/api/auth/login", json={"email": who.email, "password": "correct horse"})
    assert r.status_code == 200, r.text
    http.cookies.clear()
    token: str = r.json()["token"]
    return token


async def following(srv: HubServer, token: str, project_id: object) -> WsClient:
    """A websocket subscribed to the project, past its snapshot."""
    client = await WsClient.open(srv.base_url, token)
    await client.subscribe(str(project_id))
    await client.expect(protocol.Snapshot)
    return client


@pytest.mark.timeout(30)
async def test_logout_closes_that_sessions_websockets_and_no_other(
    services: Services, store: Store
) -> None:
    """Log out closes the session's open websockets with 4401; the user's other session keeps streaming."""
    async with (
        hub_server(services, FAST_SWEEP) as srv,
        httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http,
    ):
        alice = await sign_up(http)
        other_token = await log_in(http, alice)
        project_id = await new_project(store, alice.user_id)
        revoked = await following(srv, alice.token, project_id)
        kept = await following(srv, other_token, project_id)
        r = await http.post("/api/auth/logout", headers=alice.headers)
        assert r.status_code == 204
        logged_out_at = time.monotonic()
        assert await revoked.close_code(timeout_s=5) == CloseCode.UNAUTHENTICATED
        print(f"closed {time.monotonic() - logged_out_at:.2f} s after log out (sweep 0.2 s)")
        # the other session is untouched and still receives events
        event = await add_node(store, project_id)
        assert (await kept.expect(protocol.Event)).seq == event.seq
        # and the revoked token opens nothing new, over websocket or REST
        again = await WsClient.open(srv.base_url, alice.token)
        assert await again.close_code() == CloseCode.UNAUTHENTICATED
        assert (await http.get("/api/auth/me", headers=alice.headers)).status_code == 401
        await kept.close()


@pytest.mark.timeout(30)
async def test_expired_session_closes_its_websocket(services: Services, store: Store) -> None:
    """A session that expires while its websocket is open is closed with 4401, and cannot reconnect."""
    async with hub_server(services, FAST_SWEEP) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
            alice = await sign_up(http)
        project_id = await new_project(store, alice.user_id)
        client = await following(srv, alice.token, project_id)
        await client.send({"type": "ping"})
        await client.expect(protocol.Pong)
        await store.db.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = :u",
            {"u": alice.user_id},
        )
        assert await client.close_code(timeout_s=5) == CloseCode.UNAUTHENTICATED
        again = await WsClient.open(srv.base_url, alice.token)
        assert await again.close_code() == CloseCode.UNAUTHENTICATED


@pytest.mark.timeout(30)
async def test_a_strangers_project_leaks_nothing_over_the_websocket(
    services: Services, store: Store
) -> None:
    """Bob subscribing to Alice's project gets project_not_found, and none of her later events."""
    async with hub_server(services) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
            alice = await sign_up(http)
            bob = await sign_up(http)
        project_id = await new_project(store, alice.user_id)
        owner = await following(srv, alice.token, project_id)
        stranger = await WsClient.open(srv.base_url, bob.token)
        await stranger.subscribe(str(project_id))
        error = await stranger.expect(protocol.Error)
        assert (error.code, error.project_id) == ("project_not_found", project_id)
        # a since cannot sneak past the check either
        await stranger.subscribe(str(project_id), since=0)
        error = await stranger.expect(protocol.Error)
        assert error.code == "project_not_found"
        event = await add_node(store, project_id, data={"prompt": "alice's secret"})
        assert (await owner.expect(protocol.Event)).seq == event.seq
        # the owner has it; the stranger's next frame is the answer to its ping, nothing before
        await stranger.send({"type": "ping"})
        assert isinstance(await stranger.recv(), protocol.Pong)
        for c in (owner, stranger):
            await c.close()
