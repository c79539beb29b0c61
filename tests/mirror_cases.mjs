// Runs tests/mirror_cases.json against static/cf-client.js with a scripted WebSocket.
// Usage: node tests/mirror_cases.mjs static/cf-client.js
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { CanvasflowClient } = await import(pathToFileURL(process.argv[2]).href);
const doc = JSON.parse(readFileSync(new URL("./mirror_cases.json", import.meta.url)));
const P = doc.project_id;

const sockets = [];
class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
  open() { this.readyState = 1; this.onopen(); }
  push(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.serverClose(code ?? 1000, reason ?? ""); }
  serverClose(code, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
}
const tick = () => new Promise((r) => setTimeout(r, 1));
async function until(condition, what) {
  for (let i = 0; i < 2000 && !condition(); i++) await tick();
  assert.ok(condition(), `timed out waiting for ${what}`);
}
const sorted = (ids) => [...ids].sort();
const pick = (map, keys, f) => Object.fromEntries(keys.filter((k) => map.has(k)).map((k) => [k, f(map.get(k))]));

for (const c of doc.cases) {
  sockets.length = 0;
  const statuses = [];
  const client = new CanvasflowClient({
    url: "ws://test/ws", WebSocket: FakeSocket, pingIntervalMs: 0,
    initialDelayMs: 1, maxDelayMs: 4, onStatus: (s) => statuses.push(s),
  });
  const sub = client.subscribe(P);
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ type: "subscribe", project_id: P }], c.name);
  for (const [i, step] of c.steps.entries()) {
    const where = `${c.name}, step ${i}`;
    const ws = sockets.at(-1);
    const before = ws.sent.length;
    const e = step.expect;
    if ("close" in step) {
      ws.serverClose(step.close);
      if ("stop" in e) {
        await until(() => statuses.at(-1) === e.stop, `status ${e.stop}`);
        assert.equal(client.closed, true, where);
        continue;
      }
      const count = sockets.length;
      await until(() => sockets.length > count, "a reconnect");
      sockets.at(-1).open();
      assert.deepEqual(sockets.at(-1).sent, e.resume, where);
      continue;
    }
    ws.push(step.frame);
    const s = sub.state;
    if ("seq" in e) assert.equal(s.seq, e.seq, `${where}: seq`);
    if ("nodes" in e) assert.deepEqual(sorted(s.nodes.keys()), e.nodes, `${where}: nodes`);
    if ("connections" in e) assert.deepEqual(sorted(s.connections.keys()), e.connections, `${where}: connections`);
    if ("jobs" in e) assert.deepEqual(Object.fromEntries([...s.jobs].map(([k, j]) => [k, j.status])), e.jobs, `${where}: jobs`);
    if ("progress" in e) assert.deepEqual(pick(s.jobs, Object.keys(e.progress), (j) => j.progress), e.progress, `${where}: progress`);
    if ("queue" in e) assert.deepEqual(pick(s.jobs, Object.keys(e.queue), (j) => [j.queue_position ?? null, j.eta_s ?? null, j.progress_estimated ?? false]), e.queue, `${where}: queue`);
    if ("node_x" in e) assert.deepEqual(pick(s.nodes, Object.keys(e.node_x), (n) => n.x), e.node_x, `${where}: node_x`);
    if ("node_status" in e) assert.deepEqual(pick(s.nodes, Object.keys(e.node_status), (n) => n.status), e.node_status, `${where}: node_status`);
    if ("takes" in e) assert.deepEqual(sorted(s.takes.keys()), e.takes, `${where}: takes`);
    if ("active_take" in e) assert.deepEqual(pick(s.nodes, Object.keys(e.active_take), (n) => n.active_take_id ?? null), e.active_take, `${where}: active_take`);
    if ("members" in e) assert.deepEqual(Object.fromEntries([...s.members].map(([k, m]) => [k, m.role])), e.members, `${where}: members`);
    if ("presence" in e) assert.deepEqual(sorted(s.presence.keys()), e.presence, `${where}: presence`);
    if ("deleted" in e) assert.equal(s.deleted, e.deleted, `${where}: deleted`);
    if ("ended" in e) assert.equal(!sub.active, e.ended, `${where}: ended`);
    if ("send" in e) assert.deepEqual(ws.sent.slice(before), e.send, `${where}: send`);
    if ("later" in e) {
      if (e.later.length) {
        await until(() => ws.sent.length >= before + e.later.length, "a retried subscribe");
      } else {
        await new Promise((r) => setTimeout(r, 20)); // a retry that must not come: give it its 4 ms cap, five times over
      }
      assert.deepEqual(ws.sent.slice(before), e.later, `${where}: later`);
    }
  }
  client.close();
}
console.log(`${doc.cases.length} cases passed`);
