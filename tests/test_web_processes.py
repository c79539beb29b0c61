"""Many web processes behind one port: `canvasflow web --reuse-port`, twice, on one port.

Real child processes (the operator's command line), real `websockets` clients
connecting to the one port, the kernel spreading them over both processes;
changes go through the real rule (publish_change) and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import psutil
import pytest

from common import protocol
from db.changes import Store
from tests.support.accounts import Account
from tests.support.procs import WebProc
from tests.support.services import Services, free_port
from tests.support.waits import until
from tests.support.ws import WsClient, add_node, new_project

#: clients opened until both processes hold some (the kernel hashes each connection)
MAX_CLIENTS = 40
CHANGES = 30


@contextlib.contextmanager
def shared_port_webs(services: Services, n: int) -> Iterator[list[WebProc]]:
    """`n` `canvasflow web --reuse-port` processes on one port, stopped at the end."""
    port = free_port()
    webs = [WebProc(services, port) for _ in range(n)]
    for web in webs:
        web.args.append("--reuse-port")
    try:
        for web in webs:
            web.start()
        for web in webs:
            web.wait_ready()
        yield webs
    finally:
        for web in webs:
            web.stop()


def client_ports(pid: int, server_port: int) -> set[int]:
    """The remote ports of the connections process `pid` accepted on `server_port`."""
    return {
        c.raddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == server_port and c.raddr and c.status == "ESTABLISHED"
    }


@pytest.mark.timeout(120)
async def test_two_web_processes_on_one_port_send_identical_gapless_streams(
    services: Services, store: Store, alice: Account
) -> None:
    """Clients spread by the kernel over two processes sharing a port all get every seq once, in order."""
    with shared_port_webs(services, 2) as webs:
        base_url, port = webs[0].base_url, webs[0].port
        project_id = await new_project(store, alice.user_id)
        clients: list[WsClient] = []
        try:
            # 1. connect until each process holds at least two of the clients
            held: list[set[int]] = [set(), set()]
            while len(clients) < MAX_CLIENTS and min(len(h) for h in held) < 2:
                client = await WsClient.open(base_url, alice.token)
                clients.append(client)
                await client.subscribe(project_id)
                await client.expect(protocol.Snapshot)
                mine = client.ws.local_address[1]
                for i, web in enumerate(webs):
                    assert web.popen is not None
                    if mine in client_ports(web.popen.pid, port):
                        held[i].add(mine)
            assert min(len(h) for h in held) >= 2, f"the kernel gave one process all: {held}"
            # 2. changes through the rule; every client reads every seq once, in order
            seqs = [(await add_node(store, project_id, x=i)).seq for i in range(CHANGES)]

            async def stream(client: WsClient) -> list[int]:
                got: list[int] = []
                while len(got) < CHANGES:
                    message = await client.expect(protocol.Event, timeout_s=20)
                    got.append(message.seq)
                return got

            streams = await asyncio.gather(*(stream(c) for c in clients))
            assert all(s == seqs for s in streams), streams
            assert seqs == list(range(seqs[0], seqs[0] + CHANGES)), "gapless"
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    await until(lambda: all(not w.alive for w in webs), "both web processes to exit")
