// node --test: the live store's overlay against server events and REST replies.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyEvent, applySnapshot, emptyState } from "../../cf-client.js";
import { LiveStore } from "./store.js";

const P = "p1";
const node = (id, extra = {}) => ({ id, type: "prompt", x: 0, y: 0, data: { prompt: "" }, ...extra });

/** A store following a fake server state, with helpers to push a snapshot or an event. */
function setup(nodes = [node("a")], connections = []) {
  const store = new LiveStore(P);
  const state = emptyState(P);
  store.attach(state);
  const snapshot = { type: "snapshot", project_id: P, seq: 10, nodes, connections, jobs: [] };
  applySnapshot(state, snapshot);
  store.onServer("snapshot", snapshot);
  const event = (kind, data) => {
    const frame = { type: "event", project_id: P, seq: state.seq + 1, kind, data };
    applyEvent(state, kind, data);
    state.seq = frame.seq;
    store.onServer(kind, frame);
  };
  return { store, state, event, view: () => store.getView() };
}

test("a local edit shows at once, survives its own write, and goes when its event arrives", () => {
  const { store, event, view } = setup();
  store.edit("node", "a", { data: { prompt: "typing" } });
  assert.equal(view().nodes.get("a").data.prompt, "typing");
  const token = store.send("node", "a", { patch: { data: { prompt: "typed" } } });
  assert.equal(view().nodes.get("a").data.prompt, "typed");
  store.settle(token, node("a", { data: { prompt: "typed" } }));
  assert.equal(view().nodes.get("a").data.prompt, "typed");
  assert.equal(store.overlay.node.size, 1, "kept until the event");
  event("node.updated", { node: node("a", { data: { prompt: "typed" } }) });
  assert.equal(store.overlay.node.size, 0);
  assert.equal(view().nodes.get("a").data.prompt, "typed");
});

test("a REST reply that comes after a newer event does not overwrite it", () => {
  const { store, event, view } = setup();
  const token = store.send("node", "a", { patch: { x: 5 } });
  // our change (seq 11) and then someone else's (seq 12) arrive before our reply
  event("node.updated", { node: node("a", { x: 5 }) });
  event("node.updated", { node: node("a", { x: 99 }) });
  store.settle(token, node("a", { x: 5 }));
  assert.equal(view().nodes.get("a").x, 99);
  assert.equal(store.overlay.node.size, 0);
});

test("with version fields, a reply is taken only when its version is greater", () => {
  const { store, event, view } = setup([node("a", { version: 10 })]);
  const token = store.send("node", "a", { patch: { x: 5 } });
  event("node.updated", { node: node("a", { x: 7, version: 12 }) });
  store.settle(token, node("a", { x: 5, version: 11 }));
  assert.equal(view().nodes.get("a").x, 7);
  const later = store.send("node", "a", { patch: { x: 8 } });
  store.settle(later, node("a", { x: 8, version: 13 }));
  assert.equal(view().nodes.get("a").x, 8, "the reply is newer than anything heard");
});

test("a created node shows from its reply until its event, and is not shown twice", () => {
  const { store, event, view } = setup([]);
  const token = store.send("node", null);
  store.settle(token, node("b", { x: 3 }));
  assert.deepEqual([...view().nodes.keys()], ["b"]);
  event("node.created", { node: node("b", { x: 3 }) });
  assert.deepEqual([...view().nodes.keys()], ["b"]);
  assert.equal(store.overlay.node.size, 0);
  // the event first, then the reply: nothing stays behind
  const second = store.send("node", null);
  event("node.created", { node: node("c") });
  store.settle(second, node("c"));
  assert.equal(store.overlay.node.size, 0);
  event("node.deleted", { node_id: "c", connection_ids: [] });
  assert.equal(view().nodes.has("c"), false, "a late reply never resurrects a deleted node");
});

test("a delete hides the node and its links at once, and both come back if the write fails", () => {
  // the links go with the node as the server's delete takes them: until the event
  // they would still fill ports and block re-creating them (undo of a delete)
  const link = { id: "c1", source_id: "a", target_id: "b", target_port: "prompt" };
  const { store, event, view } = setup([node("a"), node("b")], [link]);
  const token = store.send("node", "a", { removed: true });
  assert.equal(view().nodes.has("a"), false);
  assert.equal(view().connections.has("c1"), false);
  store.fail(token);
  assert.equal(view().nodes.has("a"), true);
  assert.equal(view().connections.has("c1"), true);
  const again = store.send("node", "b", { removed: true });
  store.settle(again, null);
  assert.equal(view().nodes.has("b"), false, "hidden until the event");
  assert.equal(view().connections.has("c1"), false, "its link too");
  event("node.deleted", { node_id: "b", connection_ids: ["c1"] });
  assert.equal(view().nodes.has("b"), false);
  assert.equal(view().connections.has("c1"), false);
  assert.equal(store.overlay.node.size, 0);
});

test("an edit still being typed is not cleared by the event of an earlier save", () => {
  const { store, event, view } = setup();
  const first = store.send("node", "a", { patch: { data: { prompt: "hel" } } });
  store.edit("node", "a", { data: { prompt: "hello" } });
  store.settle(first, node("a", { data: { prompt: "hel" } }));
  event("node.updated", { node: node("a", { data: { prompt: "hel" } }) });
  assert.equal(view().nodes.get("a").data.prompt, "hello");
});

test("someone else deleting a node drops this tab's unsent edits of it", () => {
  const { store, event, view } = setup([node("a"), node("b")]);
  store.edit("node", "a", { x: 40 });
  event("node.deleted", { node_id: "a", connection_ids: [] });
  assert.equal(view().nodes.has("a"), false);
  assert.equal(store.overlay.node.size, 0);
});

test("React Flow's change objects select, measure and move through the store", () => {
  const { store, view } = setup([node("a"), node("b")]);
  const moved = store.applyNodeChanges([
    { type: "select", id: "a", selected: true },
    { type: "dimensions", id: "a", dimensions: { width: 260, height: 200 } },
    { type: "position", id: "b", position: { x: 10.04, y: 20 }, dragging: true },
  ]);
  assert.deepEqual([...view().selectedNodes], ["a"]);
  assert.deepEqual(view().measured.get("a"), { width: 260, height: 200 });
  assert.deepEqual(moved, [{ id: "b", x: 10, y: 20, dragging: true }]);
  assert.equal(view().nodes.get("b").x, 10);
  store.applyEdgeChanges([{ type: "select", id: "e", selected: true }]);
  assert.deepEqual([...view().selectedEdges], ["e"]);
});

test("a snapshot clears settled writes it already reflects, and prunes the selection", () => {
  const { store, state, view } = setup([node("a"), node("b")]);
  const token = store.send("node", "a", { patch: { x: 1 } });
  store.settle(token, node("a", { x: 1 }));
  store.select(["a", "b"]);
  const snapshot = { type: "snapshot", project_id: P, seq: 20, nodes: [node("a", { x: 1 })], connections: [], jobs: [] };
  applySnapshot(state, snapshot);
  store.onServer("snapshot", snapshot);
  assert.equal(store.overlay.node.size, 0);
  assert.deepEqual([...view().selectedNodes], ["a"]);
});

test("the view object is stable until something changes", () => {
  const { store, view } = setup();
  const first = view();
  assert.equal(view(), first);
  store.edit("node", "a", { x: 3 });
  assert.notEqual(view(), first);
});

test("my role comes from the members and follows member events; a removed user has none", () => {
  const { store, state, event } = setup();
  store.setMe({ id: "u1", email: "ann@x" });
  store.setProject({ id: P, role: "editor" });
  assert.equal(store.getView().role, "editor", "before the members arrive, the REST answer speaks");
  state.members = new Map([["u1", { user_id: "u1", role: "owner" }], ["u2", { user_id: "u2", role: "editor" }]]);
  store.changed();
  assert.equal(store.getView().role, "owner");
  store.setMe({ id: "u2", email: "ben@x" });
  event("member.updated", { member: { user_id: "u2", role: "viewer" }, by: "u1" });
  assert.equal(store.getView().role, "viewer");
  event("member.removed", { user_id: "u2", by: "u1" });
  assert.equal(store.getView().role, null);
});

test("a take being deleted is hidden at once; an older REST page never brings a deleted take back", () => {
  const { store, state, event } = setup([node("v", { type: "video" })]);
  const take = (id) => ({ id, node_id: "v", version: 1, index: 0 });
  store.putTakes([take("t1"), take("t2")]);
  assert.deepEqual([...store.getView().takes.keys()], ["t1", "t2"]);
  store.hideTake("t1");
  assert.deepEqual([...store.getView().takes.keys()], ["t2"]);
  event("take.deleted", { take_id: "t1", node: { ...node("v", { type: "video" }), version: 12 } });
  store.putTakes([take("t1"), take("t2"), take("t3")]);
  assert.deepEqual([...state.takes.keys()].sort(), ["t2", "t3"]);
  assert.equal(store.getView().takes.has("t1"), false);
});

test("a REST job behind the live progress keeps the live progress and its estimated mark", () => {
  const { store, state, view } = setup();
  state.jobs.set("j", { job_id: "j", node_id: "a", status: "processing", progress: 0.5, progress_estimated: true });
  store.putJob({ job_id: "j", node_id: "a", status: "processing", progress: 0.3, progress_estimated: false, eta_s: 9 });
  const job = view().jobs.get("j");
  assert.equal(job.progress, 0.5);
  assert.equal(job.progress_estimated, true);
  assert.equal(job.eta_s, 9);
});
