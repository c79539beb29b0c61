"""static/cf-client.js: its rules under Node with a scripted socket, then live in Chromium."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from db.changes import Store
from tests.support.services import Services, settings_for
from tests.support.ws import HubServer, add_node, connect_nodes, move_node, remove_node

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "static" / "cf-client.js"
CHROMIUM = "/usr/bin/chromium"

# A WebSocket stand-in: records what the client sends and lets the script push frames.
NODE_HARNESS = """
import assert from "node:assert/strict";
import { CanvasflowClient, backoffDelay } from "%(client)s";

const sockets = [];
class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
  open() { this.readyState = 1; this.onopen(); }
  push(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.serverClose(code ?? 1000, reason ?? ""); }
  serverClose(code, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
}
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
const P = "9b1e4c52-0000-4000-8000-000000000001";
const node = (id, x = 0) => ({ id, project_id: P, x, y: 0, data: {} });
"""

NODE_SCRIPT = """
const statuses = [];
const changes = [];
const client = new CanvasflowClient({
  url: "ws://test/ws", WebSocket: FakeSocket, initialDelayMs: 1, maxDelayMs: 4,
  pingIntervalMs: 0, onStatus: (s) => statuses.push(s),
});
const sub = client.subscribe(P, { onChange: (state, reason) => changes.push([reason, state.seq]) });
let ws = sockets[0];
ws.open();
assert.deepEqual(ws.sent, [{ type: "subscribe", project_id: P }]);

// snapshot, then events in order; a duplicate is ignored
ws.push({ type: "snapshot", project_id: P, seq: 3, nodes: [node("a")], connections: [], jobs: [] });
ws.push({ type: "event", project_id: P, seq: 4, kind: "node.created", data: { node: node("b") } });
ws.push({ type: "event", project_id: P, seq: 4, kind: "node.created", data: { node: node("b") } });
ws.push({ type: "event", project_id: P, seq: 5, kind: "node.updated", data: { node: node("a", 9) } });
assert.equal(sub.state.seq, 5);
assert.deepEqual([...sub.state.nodes.keys()].sort(), ["a", "b"]);
assert.equal(sub.state.nodes.get("a").x, 9);
assert.deepEqual(changes, [["snapshot", 3], ["node.created", 4], ["node.updated", 5]]);

// a gap: resubscribe with since = last applied, ignore events until the answer
ws.push({ type: "event", project_id: P, seq: 7, kind: "node.deleted", data: { node_id: "a", connection_ids: [] } });
assert.deepEqual(ws.sent.at(-1), { type: "subscribe", project_id: P, since: 5 });
ws.push({ type: "event", project_id: P, seq: 8, kind: "node.deleted", data: { node_id: "b", connection_ids: [] } });
assert.equal(sub.state.seq, 5);
ws.push({ type: "subscribed", project_id: P, seq: 5 });
ws.push({ type: "event", project_id: P, seq: 6, kind: "connection.created", data: { connection: { id: "c", source_id: "a", target_id: "b" } } });
ws.push({ type: "event", project_id: P, seq: 7, kind: "node.deleted", data: { node_id: "a", connection_ids: ["c"] } });
assert.equal(sub.state.seq, 7);
assert.deepEqual([...sub.state.nodes.keys()], ["b"]);
assert.equal(sub.state.connections.size, 0);

// a slow-consumer close: reconnect with backoff, resume with since
ws.serverClose(4008, "slow consumer: reconnect with since");
await tick(20);
assert.equal(sockets.length, 2);
ws = sockets[1];
ws.open();
assert.deepEqual(ws.sent, [{ type: "subscribe", project_id: P, since: 7 }]);
ws.push({ type: "subscribed", project_id: P, seq: 7 });

// progress ticks touch only live jobs, and only forwards
ws.push({ type: "event", project_id: P, seq: 8, kind: "job.created", data: { job: { job_id: "j", node_id: "b", status: "pending", progress: 0 }, node: node("b") } });
ws.push({ type: "job.progress", project_id: P, job_id: "j", progress: 0.5 });
ws.push({ type: "job.progress", project_id: P, job_id: "j", progress: 0.25 });
assert.equal(sub.state.jobs.get("j").progress, 0.5);

// the project is deleted: the subscription ends
ws.push({ type: "event", project_id: P, seq: 9, kind: "project.deleted", data: { project_id: P } });
ws.push({ type: "unsubscribed", project_id: P });
assert.equal(sub.state.deleted, true);
assert.equal(sub.active, false);
assert.equal(changes.at(-1)[0], "ended");

// 4401: never reconnect
ws.serverClose(4401, "log in");
await tick(20);
assert.equal(sockets.length, 2);
assert.equal(statuses.at(-1), "unauthenticated");
assert.ok(statuses.includes("reconnecting"));

// full jitter: within [0, min(max, initial * 2^n)]
assert.equal(backoffDelay(10, { initialMs: 500, maxMs: 15000 }, () => 0.999), 14985);
assert.equal(backoffDelay(0, { initialMs: 500, maxMs: 15000 }, () => 1), 500);
// the documented defaults (docs/protocol.md): 0.5 s doubling, capped at 4 s
assert.equal(backoffDelay(0, undefined, () => 1), 500);
assert.equal(backoffDelay(3, undefined, () => 1), 4000);
assert.equal(backoffDelay(12, undefined, () => 1), 4000);
console.log("ok");
"""


def test_js_client_rules_under_node() -> None:
    """The client applies snapshots and events by seq, resubscribes on gaps, reconnects with since."""
    node = shutil.which("node")
    assert node, "node is needed to test static/cf-client.js"
    script = (NODE_HARNESS % {"client": CLIENT.as_uri()}) + NODE_SCRIPT
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- in a real browser ---------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium."""
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            await b.close()


PAGE_SETUP = """
async ([email]) => {
  const r = await fetch("/api/auth/signup", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email, password: "correct horse"}),
  });
  const user = (await r.json()).user;
  const p = await fetch("/api/projects", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: "p"}),
  });
  const project = await p.json();
  const { CanvasflowClient } = await import("/cf-client.js");
  window.reasons = [];
  window.statuses = [];
  window.client = new CanvasflowClient({
    initialDelayMs: 50, maxDelayMs: 200, onStatus: (s) => window.statuses.push(s),
  });
  window.sub = window.client.subscribe(project.id, {
    onChange: (state, reason) => window.reasons.push(reason),
  });
  return [user.id, project.id];
}
"""

PAGE_STATE = """
() => ({
  seq: window.sub.state.seq,
  nodes: Object.fromEntries([...window.sub.state.nodes].map(([id, n]) => [id, n.x])),
  connections: [...window.sub.state.connections.keys()].sort(),
  reasons: window.reasons,
  statuses: window.statuses,
})
"""


async def page_state(page: Page) -> dict[str, Any]:
    """The client's view of the project, from the page."""
    state: dict[str, Any] = await page.evaluate(PAGE_STATE)
    return state


async def wait_for_seq(page: Page, seq: int, timeout_s: float = 20) -> dict[str, Any]:
    """Poll the page until the client's state reaches `seq`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        state = await page_state(page)
        if state["seq"] == seq:
            return state
        assert asyncio.get_running_loop().time() < deadline, f"client at {state['seq']}, not {seq}"
        await asyncio.sleep(0.05)


async def postgres_state(store: Store, project_id: str) -> dict[str, Any]:
    """The same view read from Postgres."""
    nodes = await store.db.fetch_all(
        "SELECT id, x FROM nodes WHERE project_id = :p", {"p": project_id}
    )
    conns = await store.db.fetch_all(
        "SELECT id FROM connections WHERE project_id = :p", {"p": project_id}
    )
    seq = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": project_id})
    return {
        "seq": seq,
        "nodes": {str(r["id"]): r["x"] for r in nodes},
        "connections": sorted(str(r["id"]) for r in conns),
    }


async def test_js_client_in_chromium_follows_and_resumes_after_a_restart(
    browser: Browser, services: Services, store: Store
) -> None:
    """In Chromium, with the session cookie: live events, then a server restart resumed with since."""
    from tests.support.services import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(services, public_url=base, allowed_origins=(base,))
    srv = HubServer(settings, port)
    await asyncio.to_thread(srv.start)
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{base}/favicon.svg")
        _, project_id = await page.evaluate(PAGE_SETUP, ["js@example.com"])
        await wait_for_seq(page, 0)
        events = [await add_node(store, project_id, x=i) for i in range(3)]
        a, b = (str(e.data.node.id) for e in events[:2])
        await connect_nodes(store, project_id, a, b)
        await move_node(store, project_id, a, 42)
        await wait_for_seq(page, 5)
        # the server goes away; changes keep being committed meanwhile
        await asyncio.to_thread(srv.stop)
        await remove_node(store, project_id, b)
        await add_node(store, project_id, x=7)
        srv = HubServer(settings, port)
        await asyncio.to_thread(srv.start)
        state = await wait_for_seq(page, 7)
        assert {k: state[k] for k in ("seq", "nodes", "connections")} == await postgres_state(
            store, project_id
        )
        # one snapshot at the start; the restart was resumed with since (a replay)
        assert state["reasons"].count("snapshot") == 1, state["reasons"]
        assert "subscribed" in state["reasons"]
        assert "reconnecting" in state["statuses"]
        assert errors == []
    finally:
        await asyncio.to_thread(srv.stop)
