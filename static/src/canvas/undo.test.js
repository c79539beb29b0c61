// node --test: the undo stack, planning against changes made by others, id remapping.
import assert from "node:assert/strict";
import { test } from "node:test";
import { UndoStack, inverse, isEmpty, planAction, remapAction } from "./undo.js";

const n = (id, type, extra = {}) => ({ id, type, x: 0, y: 0, data: {}, ...extra });
const graph = (nodes, connections = []) => ({
  nodes: new Map(nodes.map((x) => [x.id, x])),
  connections: new Map(connections.map((c) => [c.id, c])),
});

test("undo takes the newest entry, redo brings it back, a new action clears redo", () => {
  const stack = new UndoStack();
  const a = stack.record({ label: "Move", forward: { type: "move", moves: [{ id: "a", from: { x: 0, y: 0 }, to: { x: 5, y: 0 } }] } });
  stack.record({ label: "Edit", forward: { type: "data", id: "a", from: { prompt: "" }, to: { prompt: "x" } } });
  const edit = stack.takeUndo();
  assert.equal(edit.label, "Edit");
  assert.deepEqual(edit.backward, { type: "data", id: "a", from: { prompt: "x" }, to: { prompt: "" } });
  stack.pushUndone(edit);
  assert.ok(stack.canRedo);
  const redo = stack.takeRedo();
  stack.pushDone(redo);
  assert.equal(stack.done.length, 2);
  stack.pushUndone(stack.takeUndo());
  stack.record({ label: "Other", forward: { type: "data", id: "b", from: {}, to: {} } });
  assert.equal(stack.canRedo, false);
  assert.equal(stack.done[0], a);
});

test("entries with one key inside the merge window become one: first from, last to", () => {
  const stack = new UndoStack({ mergeWindowMs: 1000 });
  const typing = (from, to) => ({ label: "Edit", key: "prompt:a", forward: { type: "data", id: "a", from: { prompt: from }, to: { prompt: to } } });
  stack.record(typing("", "h"), 0);
  stack.record(typing("h", "he"), 500);
  stack.record(typing("he", "hey"), 900);
  assert.equal(stack.done.length, 1);
  assert.deepEqual(stack.done[0].backward, { type: "data", id: "a", from: { prompt: "hey" }, to: { prompt: "" } });
  stack.record(typing("hey", "hey!"), 5000);
  assert.equal(stack.done.length, 2, "outside the window: a new entry");
  const nudge = (x0, x1) => ({ label: "Move", key: "nudge", forward: { type: "move", moves: [{ id: "a", from: { x: x0, y: 0 }, to: { x: x1, y: 0 } }] } });
  stack.record(nudge(0, 10), 6000);
  stack.record(nudge(10, 20), 6100);
  assert.deepEqual(stack.done.at(-1).forward.moves, [{ id: "a", from: { x: 0, y: 0 }, to: { x: 20, y: 0 } }]);
});

test("the stack keeps at most `limit` entries", () => {
  const stack = new UndoStack({ limit: 3 });
  for (let i = 0; i < 5; i += 1) stack.record({ label: String(i), forward: { type: "data", id: "a", from: {}, to: {} } });
  assert.deepEqual(stack.done.map((e) => e.label), ["2", "3", "4"]);
});

test("a move someone else changed since is skipped; the rest runs", () => {
  const g = graph([n("a", "prompt", { x: 5 }), n("b", "prompt", { x: 99 })]);
  const back = {
    type: "move",
    moves: [
      { id: "a", from: { x: 5, y: 0 }, to: { x: 0, y: 0 } },
      { id: "b", from: { x: 5, y: 0 }, to: { x: 0, y: 0 } },
      { id: "gone", from: { x: 5, y: 0 }, to: { x: 0, y: 0 } },
    ],
  };
  const { action, skipped } = planAction(back, g);
  assert.deepEqual(action.moves.map((m) => m.id), ["a"]);
  assert.equal(skipped, 2);
});

test("an edit undone only while the text is still what this user typed", () => {
  const back = { type: "data", id: "a", from: { prompt: "mine" }, to: { prompt: "" } };
  assert.equal(planAction(back, graph([n("a", "prompt", { data: { prompt: "mine" } })])).skipped, 0);
  const theirs = planAction(back, graph([n("a", "prompt", { data: { prompt: "theirs" } })]));
  assert.equal(theirs.skipped, 1);
  assert.ok(isEmpty(theirs.action));
});

test("undoing a create removes the node unless someone edited it since", () => {
  const created = { type: "create", nodes: [n("a", "prompt", { data: { prompt: "x" } })], connections: [] };
  const back = inverse(created);
  assert.equal(back.type, "remove");
  const ok = planAction(back, graph([n("a", "prompt", { data: { prompt: "x", image_url: "signed-again" } })]));
  assert.deepEqual(ok.action.nodes.map((x) => x.id), ["a"]);
  const edited = planAction(back, graph([n("a", "prompt", { data: { prompt: "changed" } })]));
  assert.equal(edited.skipped, 1);
  assert.ok(isEmpty(edited.action));
});

test("undoing a delete re-creates nodes and the links whose other end still exists", () => {
  const deleted = {
    type: "remove",
    nodes: [n("p", "prompt", { data: { prompt: "fox" } })],
    connections: [
      { id: "c1", source: "p", target: "v", port: "prompt" },
      { id: "c2", source: "p", target: "gone", port: "prompt" },
    ],
  };
  const { action, skipped } = planAction(inverse(deleted), graph([n("v", "video")]));
  assert.equal(action.type, "create");
  assert.deepEqual(action.connections.map((c) => c.id), ["c1"]);
  assert.equal(skipped, 1);
});

test("undoing a delete before this tab heard of it keeps the deleted node's links", () => {
  // the delete's event has not reached this tab yet: its view still holds the link the
  // server removed with the node, which must not count as a duplicate or a taken port
  const deleted = {
    type: "remove",
    nodes: [n("p", "prompt", { data: { prompt: "fox" } })],
    connections: [{ id: "c1", source: "p", target: "v", port: "prompt" }],
  };
  const stale = graph([n("v", "video")], [{ id: "c1", source_id: "p", target_id: "v", target_port: "prompt" }]);
  const { action, skipped } = planAction(inverse(deleted), stale);
  assert.deepEqual(action.connections.map((c) => c.id), ["c1"]);
  assert.equal(skipped, 0);
});

test("a link whose port was taken meanwhile is skipped when re-created", () => {
  const back = { type: "create", nodes: [], connections: [{ id: "c1", source: "p", target: "v", port: "prompt" }] };
  const g = graph([n("p", "prompt"), n("q", "prompt"), n("v", "video")], [{ id: "c9", source_id: "q", target_id: "v" }]);
  assert.equal(planAction(back, g).skipped, 1);
});

test("re-created ids are remapped in every entry of both stacks", () => {
  const stack = new UndoStack();
  stack.record({ label: "Move", forward: { type: "move", moves: [{ id: "old", from: { x: 0, y: 0 }, to: { x: 1, y: 1 } }] } });
  stack.record({ label: "Link", forward: { type: "create", nodes: [], connections: [{ id: "c", source: "old", target: "v", port: "prompt" }] } });
  stack.pushUndone(stack.takeUndo());
  stack.remap(new Map([["old", "new"]]));
  assert.equal(stack.done[0].forward.moves[0].id, "new");
  assert.equal(stack.done[0].backward.moves[0].id, "new");
  assert.equal(stack.undone[0].forward.connections[0].source, "new");
  assert.deepEqual(remapAction({ type: "data", id: "old", from: {}, to: {} }, new Map([["old", "x"]])).id, "x");
});
