"""GET /ws handshake checks and connection hygiene: auth, Origin, bad frames, limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common import protocol
from common.protocol import CloseCode
from db.changes import Store
from server.realtime import HubConfig
from tests.support.accounts import Account, sign_up
from tests.support.servers import ServerThread
from tests.support.services import Services
from tests.support.ws import WsClient, add_node, hub_server, new_project


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_handshake_without_a_valid_session_is_closed_4401(
    server: ServerThread, headers: dict[str, str]
) -> None:
    """No credentials, or a bad token: the server closes with 4401 before any frame."""
    client = await WsClient.open(server.base_url, headers=headers)
    assert await client.close_code() == CloseCode.UNAUTHENTICATED


async def test_session_cookie_from_an_allowed_origin_works(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """A browser handshake with the session cookie and our own Origin is served."""
    account = await sign_up(client)
    project_id = await new_project(store, account.user_id)
    headers = {"Cookie": f"cf_session={account.token}", "Origin": server.base_url}
    ws = await WsClient.open(server.base_url, headers=headers)
    await ws.subscribe(project_id)
    assert (await ws.expect(protocol.Snapshot)).project_id == project_id
    await ws.close()


@pytest.mark.parametrize("auth", ["cookie", "bearer"])
async def test_foreign_origin_is_closed_4403(
    server: ServerThread, alice: Account, auth: str
) -> None:
    """A handshake from another site's page is refused with 4403, whatever it authenticates with."""
    headers = {"Origin": "https://evil.example"}
    if auth == "cookie":
        headers["Cookie"] = f"cf_session={alice.token}"
    else:
        headers["Authorization"] = f"Bearer {alice.token}"
    client = await WsClient.open(server.base_url, headers=headers)
    assert await client.close_code() == CloseCode.FORBIDDEN_ORIGIN


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe", "project_id": 12}', "invalid_message"),
        (
            '{"type": "subscribe", "project_id": "0c6e4b3a-5b7e-4e8e-9c4e-1d2a3b4c5d6e", "since": "x"}',
            "invalid_message",
        ),
        ("[]", "invalid_message"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays(
    server: ServerThread, alice: Account, frame: str, code: str
) -> None:
    """Malformed JSON, an unknown type or wrong member types: an error frame, then business as usual."""
    client = await WsClient.open(server.base_url, alice.token)
    await client.send(frame)
    error = await client.expect(protocol.Error)
    assert error.code == code and error.message and error.project_id is None
    await client.send({"type": "ping"})
    await client.expect(protocol.Pong)
    await client.close()


async def test_binary_frames_are_refused_with_an_error(
    server: ServerThread, alice: Account
) -> None:
    """A binary frame gets invalid_message; JSON belongs in text frames."""
    client = await WsClient.open(server.base_url, alice.token)
    await client.ws.send(b'{"type": "ping"}')
    assert (await client.expect(protocol.Error)).code == "invalid_message"
    await client.close()


async def test_oversized_frame_closes_1009(server: ServerThread, alice: Account) -> None:
    """A frame over 64 KiB closes the connection with 1009; one of exactly 64 KiB does not."""
    client = await WsClient.open(server.base_url, alice.token)
    at_limit = '{"type": "ping", "pad": "' + "x" * (64 * 1024 - 27) + '"}'
    assert len(at_limit.encode()) == 64 * 1024
    await client.send(at_limit)
    assert (await client.expect(protocol.Error)).code == "invalid_message"
    await client.send("é" * (32 * 1024 + 1))  # 65,538 bytes of UTF-8
    assert await client.close_code() == CloseCode.MESSAGE_TOO_BIG


async def test_flood_is_rate_limited_and_the_connection_recovers(
    server: ServerThread, alice: Account
) -> None:
    """50 pings at once: the burst is answered, the rest get rate_limited, and later pings work."""
    client = await WsClient.open(server.base_url, alice.token)
    for _ in range(50):
        await client.send({"type": "ping"})
    answers = [await client.recv() for _ in range(50)]
    pongs = [a for a in answers if isinstance(a, protocol.Pong)]
    limited = [a for a in answers if isinstance(a, protocol.Error) and a.code == "rate_limited"]
    assert len(pongs) >= 40 and len(limited) >= 5 and len(pongs) + len(limited) == 50
    # the bucket refills (a token every 50 ms): a ping is answered again, polled for as a
    # client would, far below the error limit
    async with asyncio.timeout(5):
        while True:
            await asyncio.sleep(0.1)
            await client.send({"type": "ping"})
            if isinstance(await client.recv(), protocol.Pong):
                break
    await client.close()


async def test_a_client_resumes_every_subscription_at_once_without_being_limited(
    server: ServerThread, alice: Account, store: Store
) -> None:
    """100 subscribes in one burst (the subscription limit: a reconnect resuming all) all succeed.

    Before, the 40-frame burst answered 60 of them rate_limited, the errors reached
    the error limit and the connection was closed with 4400 on every reconnect.
    """
    projects = [await new_project(store, alice.user_id, f"p{i}") for i in range(100)]
    client = await WsClient.open(server.base_url, alice.token)
    for project_id in projects:
        await client.send({"type": "subscribe", "project_id": str(project_id), "since": 0})
    answers = [await client.recv() for _ in projects]
    assert all(isinstance(a, protocol.Subscribed) for a in answers), [
        a for a in answers if not isinstance(a, protocol.Subscribed)
    ][:3]
    assert {a.project_id for a in answers if isinstance(a, protocol.Subscribed)} == set(projects)
    # the frame limit still holds for everything else
    for _ in range(60):
        await client.send({"type": "ping"})
    answers = [await client.recv() for _ in range(60)]
    assert any(isinstance(a, protocol.Error) and a.code == "rate_limited" for a in answers)
    await client.close()


async def test_error_limit_closes_4400_after_the_last_error(
    server: ServerThread, alice: Account
) -> None:
    """The 20th bad frame is answered with its error, then the connection closes with 4400."""
    client = await WsClient.open(server.base_url, alice.token)
    for _ in range(20):
        await client.send("nope")
    errors = [await client.expect(protocol.Error) for _ in range(20)]
    assert {e.code for e in errors} == {"malformed_json"}
    assert await client.close_code() == CloseCode.TOO_MANY_ERRORS


async def test_too_many_subscriptions_is_an_error(
    services: Services, store: Store, alice: Account
) -> None:
    """Past max_subscriptions a subscribe gets too_many_subscriptions; the others keep working."""
    projects = [await new_project(store, alice.user_id) for _ in range(3)]
    async with hub_server(services, HubConfig(max_subscriptions=2)) as srv:
        client = await WsClient.open(srv.base_url, alice.token)
        for project_id in projects:
            await client.subscribe(project_id)
        error = await client.expect(protocol.Error)
        assert (error.code, error.project_id) == ("too_many_subscriptions", projects[2])
        snaps = {(await client.expect(protocol.Snapshot)).project_id for _ in range(2)}
        assert snaps == set(projects[:2])
        await add_node(store, projects[0])
        assert (await client.expect(protocol.Event)).project_id == projects[0]
        # resubscribing to a followed project replaces it, it does not count twice
        await client.subscribe(projects[1], since=0)
        assert await client.expect(protocol.Subscribed) == protocol.Subscribed(
            project_id=projects[1], seq=0
        )
        await client.close()
