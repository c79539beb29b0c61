"""`canvasflow watch`: prints a project's events and resumes with since after a disconnect."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import httpx

from db.changes import Store
from server.watch import Watcher, ws_url
from tests.support.accounts import Account
from tests.support.procs import WebProc
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.ws import HubServer, add_node, move_node, new_project

ROOT = Path(__file__).resolve().parent.parent


def test_ws_url_accepts_http_and_bare_hosts() -> None:
    """The --url may be the site's http(s) address, a host:port, or the ws address itself."""
    assert ws_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws"
    assert ws_url("https://canvas.example/") == "wss://canvas.example/ws"
    assert ws_url("localhost:9000") == "ws://localhost:9000/ws"
    assert ws_url("wss://canvas.example/ws") == "wss://canvas.example/ws"


def event_seqs(lines: list[str]) -> list[int]:
    """The seqs of the printed event lines."""
    return [int(m.group(1)) for line in lines if (m := re.match(r"event +seq=(\d+) ", line))]


async def wait_until(predicate: Callable[[], object], timeout_s: float = 20) -> None:
    """Poll until `predicate()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_watch_resumes_after_a_server_restart_without_gaps_or_repeats(
    services: Services, store: Store, alice: Account
) -> None:
    """Across a server restart the watcher resumes with since: every seq printed exactly once."""
    project_id = await new_project(store, alice.user_id)
    first = await add_node(store, project_id)
    node_id = first.data.node.id
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(services, public_url=base, allowed_origins=(base,))
    srv = HubServer(settings, port)
    await asyncio.to_thread(srv.start)
    lines: list[str] = []
    watcher = Watcher(base, alice.token, project_id, lines.append, initial_delay_s=0.05)
    task = asyncio.create_task(watcher.run())
    try:
        await wait_until(lambda: lines and lines[0].startswith("snapshot"))
        assert lines[0] == "snapshot  seq=1 nodes=1 connections=0 jobs=0"
        for i in range(3):
            await move_node(store, project_id, node_id, i)
        await wait_until(lambda: event_seqs(lines) == [2, 3, 4])
        await asyncio.to_thread(srv.stop)
        for i in range(3):
            await move_node(store, project_id, node_id, 10 + i)  # missed while down
        srv = HubServer(settings, port)
        await asyncio.to_thread(srv.start)
        await wait_until(lambda: event_seqs(lines) == [2, 3, 4, 5, 6, 7])
        assert "resumed   seq=4" in lines
        assert sum(line.startswith("snapshot") for line in lines) == 1
        # deleting the project ends the watch with exit code 0
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.delete(f"/api/projects/{project_id}", headers=alice.headers)
            assert r.status_code == 204
        assert await asyncio.wait_for(task, 10) == 0
        assert lines[-1] == "unsubscribed: the project was deleted"
        assert event_seqs(lines) == [2, 3, 4, 5, 6, 7, 8]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(srv.stop)


async def test_watch_exits_1_on_a_foreign_project(
    server: ServerThread, store: Store, alice: Account, bob: Account
) -> None:
    """Watching someone else's project prints project_not_found and exits 1."""
    project_id = await new_project(store, alice.user_id)
    lines: list[str] = []
    code = await asyncio.wait_for(
        Watcher(server.base_url, bob.token, project_id, lines.append).run(), 10
    )
    assert code == 1
    assert lines == ["error     project_not_found: No project with that id."]


def run_cli(*args: str, timeout_s: float = 20) -> subprocess.Popen[str]:
    """`python -m server.cli watch ...` with our environment."""
    env = dict(os.environ)
    env["CANVASFLOW_LOG_LEVEL"] = "warning"
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "watch", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_cli_watch_prints_json_frames(
    server: ServerThread, store: Store, alice: Account
) -> None:
    """`canvasflow watch --json` prints the snapshot and each event as the frames' JSON."""
    project_id = await new_project(store, alice.user_id)
    proc = run_cli(str(project_id), "--url", server.base_url, "--token", alice.token, "--json")
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        snapshot = json.loads(line)
        assert (snapshot["type"], snapshot["seq"], snapshot["project_id"]) == (
            "snapshot",
            0,
            str(project_id),
        )
        await add_node(store, project_id, x=3)
        event = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20))
        assert (event["type"], event["seq"], event["kind"]) == ("event", 1, "node.created")
        assert UUID(event["data"]["node"]["project_id"]) == project_id
    finally:
        proc.kill()
        proc.communicate(timeout=10)


async def test_cli_watch_with_a_bad_token_exits_2(server: ServerThread) -> None:
    """A token the server does not know: the command says so and exits 2 without retrying."""
    proc = run_cli(str(UUID(int=1)), "--url", server.base_url, "--token", "nope")
    _, err = await asyncio.to_thread(proc.communicate, timeout=20)
    assert proc.returncode == 2
    assert "refused: unauthenticated (close 4401)" in err


class WatchProc:
    """`canvasflow watch` in a subprocess, its output lines collected by a thread."""

    def __init__(self, project_id: str, base_url: str, token: str) -> None:
        self.proc = run_cli(project_id, "--url", base_url, "--token", token)
        self.lines: list[str] = []
        self._reader = asyncio.create_task(asyncio.to_thread(self._read))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    async def close(self) -> str:
        """Stop the watcher; returns what it wrote on stderr."""
        self.proc.kill()
        _, err = await asyncio.to_thread(self.proc.communicate, timeout=10)
        await self._reader
        return err


async def test_two_cli_watchers_follow_rest_changes_across_a_web_crash(
    services: Services, alice: Account
) -> None:
    """Two terminals watch one project while a third changes it over REST.

    Both print every change, in order; after the web process is SIGKILLed and
    started again both come back by themselves and print the changes made in
    between, each seq exactly once, the two outputs identical.
    """
    web = WebProc(services)
    web.start()
    watchers: list[WatchProc] = []
    try:
        await asyncio.to_thread(web.wait_ready)
        async with httpx.AsyncClient(base_url=web.base_url, headers=alice.headers) as http:
            r = await http.post("/api/projects", json={"name": "watched"})
            project_id = r.json()["id"]
            watchers = [WatchProc(project_id, web.base_url, alice.token) for _ in range(2)]
            await wait_until(lambda: all(w.lines[:1] for w in watchers))
            assert all(w.lines[0].startswith("snapshot  seq=0") for w in watchers)
            r = await http.post(f"/api/projects/{project_id}/nodes", json={"type": "prompt"})
            node_url = f"/api/nodes/{r.json()['id']}"
            for x in range(3):
                assert (await http.patch(node_url, json={"x": x})).status_code == 200
            await wait_until(lambda: all(event_seqs(w.lines) == [1, 2, 3, 4] for w in watchers))

            await asyncio.to_thread(web.kill)
            await asyncio.to_thread(web.start)
            await asyncio.to_thread(web.wait_ready)
            for x in range(3):
                assert (await http.patch(node_url, json={"x": 10 + x})).status_code == 200
            await wait_until(
                lambda: all(event_seqs(w.lines) == [1, 2, 3, 4, 5, 6, 7] for w in watchers),
                timeout_s=30,
            )
        assert watchers[0].lines == watchers[1].lines
        assert all(sum(ln.startswith("snapshot") for ln in w.lines) == 1 for w in watchers)
    finally:
        errors = [await w.close() for w in watchers]
        web.kill()
    assert not any("Traceback" in e for e in errors), errors
