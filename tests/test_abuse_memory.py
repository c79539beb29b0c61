"""Memory is bounded in bytes (issue 13, F2): node data, nodes per project, a peer that stops reading."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import httpx
import msgspec

from common import metrics
from db.changes import Store
from server.realtime import HubConfig
from tests.support.accounts import Account, sign_up
from tests.support.services import Services
from tests.support.ws import hub_server

KIB = 1024


async def _project(http: httpx.AsyncClient, account: Account) -> str:
    r = await http.post("/api/projects", json={"name": "big"}, headers=account.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_node_data_is_capped_and_a_refused_merge_changes_nothing(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """PATCHes merging keys stop at the data limit with 413 node_data_too_large; rows and log intact.

    Before, ten 1 MB PATCHes gave one node 10 MB of data and the log 52 MB of events.
    """
    pid = await _project(client, alice)
    r = await client.post(
        f"/api/projects/{pid}/nodes", json={"type": "prompt", "data": {}}, headers=alice.headers
    )
    node_id = r.json()["id"]
    answers = []
    for i in range(10):
        patch = {"data": {f"k{i}": "x" * (10 * KIB)}}
        answers.append(
            await client.patch(f"/api/nodes/{node_id}", json=patch, headers=alice.headers)
        )
    codes = [a.status_code for a in answers]
    # 32 KiB hold three 10 KiB values and no fourth
    assert codes == [200, 200, 200] + [413] * 7, codes
    assert answers[3].json()["error"]["code"] == "node_data_too_large"
    data = await store.db.fetch_val("SELECT data::text FROM nodes WHERE id = :id", {"id": node_id})
    assert len(data.encode()) <= 32 * KIB and set(msgspec.json.decode(data)) == {"k0", "k1", "k2"}
    # the refused changes bumped no seq and logged nothing
    seq = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :id", {"id": pid})
    logged = await store.db.fetch_val(
        "SELECT sum(octet_length(data::text)) FROM events WHERE project_id = :p", {"p": pid}
    )
    assert seq == 4 and logged < 64 * KIB


async def test_a_creation_with_too_much_data_is_refused(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """A node created with data over the limit is refused with 413 and not created."""
    pid = await _project(client, alice)
    body = {"type": "prompt", "data": {"blob": "y" * (40 * KIB)}}
    r = await client.post(f"/api/projects/{pid}/nodes", json=body, headers=alice.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "node_data_too_large")
    listed = await client.get(f"/api/projects/{pid}/nodes", headers=alice.headers)
    assert listed.json() == []


async def test_nodes_per_project_are_capped_even_when_added_at_once(services: Services) -> None:
    """Concurrent adds stop at the per-project limit with 422 too_many_nodes, never beyond it."""
    overrides = {"max_nodes_per_project": 5}
    async with (
        hub_server(services, setting_overrides=overrides) as srv,
        httpx.AsyncClient(base_url=srv.base_url, timeout=20) as http,
    ):
        account = await sign_up(http)
        pid = await _project(http, account)
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/api/projects/{pid}/nodes",
                    json={"type": "prompt"},
                    headers=account.headers,
                )
                for _ in range(12)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 5 + [422] * 7
        refused = next(a for a in answers if a.status_code == 422)
        assert refused.json()["error"]["code"] == "too_many_nodes"
        listed = await http.get(f"/api/projects/{pid}/nodes", headers=account.headers)
        assert len(listed.json()) == 5


async def _raw_websocket(
    host: str, port: int, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket handshake by hand, so the client can then never read a byte."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


def _text_frame(text: str) -> bytes:
    """One masked client text frame."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    head = struct.pack("!BB", 0x81, 0x80 | 126) + struct.pack("!H", len(payload))
    if len(payload) < 126:
        head = struct.pack("!BB", 0x81, 0x80 | len(payload))
    return head + mask + masked


async def test_a_peer_that_never_reads_holds_bounded_bytes_and_is_dropped(
    services: Services,
) -> None:
    """40 subscribes to a 1 MB project from a socket that never reads: queued bytes stay under the
    limit and the connection is dropped once a write waits past the write timeout.

    Before, such a socket took web RSS from 159 to 531 MiB and held it until it closed.
    """
    config = HubConfig(send_queue_max_bytes=256 * KIB, write_timeout_s=1.0)
    async with hub_server(services, hub_config=config) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=20) as http:
            account = await sign_up(http)
            pid = await _project(http, account)
            for _ in range(32):
                r = await http.post(
                    f"/api/projects/{pid}/nodes",
                    json={"type": "prompt", "data": {"blob": "z" * (30 * KIB)}},
                    headers=account.headers,
                )
                assert r.status_code == 201
        _, writer = await _raw_websocket("127.0.0.1", srv.port, account.token)
        frame = _text_frame(msgspec.json.encode({"type": "subscribe", "project_id": pid}).decode())
        hub = srv.hub
        slow_before = metrics.WS_RESYNCS.labels("slow_consumer")._value.get()
        peak = 0
        sent = 0
        async with asyncio.timeout(30):
            # one subscribe at a time, each once the last was served (a burst would be
            # coalesced: each subscribe replaces the one before), until the server drops us
            while sent < 40 or hub.peers:
                peers = list(hub.peers)
                peak = max([peak, *(p.outbox.queued_bytes for p in peers)])
                served = all(s.live for p in peers for s in p.subscriptions.values())
                if sent < 40 and (sent == 0 or (peers and served)):
                    writer.write(frame)
                    await writer.drain()
                    sent += 1
                elif sent and not peers:
                    break
                await asyncio.sleep(0.01)
        snapshot_bytes = 32 * 31 * KIB
        assert peak <= 256 * KIB + snapshot_bytes, peak
        # dropped as a slow consumer long before its 40 snapshots were all queued
        assert metrics.WS_RESYNCS.labels("slow_consumer")._value.get() == slow_before + 1
        writer.close()
        await writer.wait_closed()
