// node --test: the take strip's state.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nextActiveAfterDelete, stripState, takeFileName, takesOf } from "./takes.js";

const take = (id, version, index, node = "v", seed = null) => ({ id, node_id: node, version, index, seed, created_at: `2026-12-01T10:00:0${version}Z`, mime_type: "video/mp4" });
const all = new Map([take("a0", 3, 0), take("a1", 3, 1), take("b0", 7, 0, "v", 42), take("b1", 7, 1, "v", 43), take("w0", 5, 0, "w")].map((t) => [t.id, t]));

test("a node's takes come newest job first, its outputs in order, numbered as they were made", () => {
  assert.deepEqual(takesOf("v", all).map((t) => t.id), ["b0", "b1", "a0", "a1"]);
  const s = stripState("v", all, "b1");
  assert.deepEqual(s.items.map((i) => [i.take.id, i.number, i.active]), [["b0", 3, false], ["b1", 4, true], ["a0", 1, false], ["a1", 2, false]]);
  assert.equal(s.items[0].label, "take 3 (seed 42)");
  assert.equal(s.active.id, "b1");
  assert.equal(s.count, 4);
});

test("comparing picks a take beside the active one; the active one or a gone one compares nothing", () => {
  assert.equal(stripState("v", all, "b1", "a0").compared.id, "a0");
  assert.equal(stripState("v", all, "b1", "b1").compared, null);
  assert.equal(stripState("v", all, "b1", "zz").compared, null);
});

test("a hidden (being deleted) take is never drawn, and deleting the active one makes the newest remaining active", () => {
  const s = stripState("v", all, "b0", null, new Set(["b0"]));
  assert.deepEqual(s.items.map((i) => i.take.id), ["b1", "a0", "a1"]);
  assert.equal(s.active, null);
  assert.equal(nextActiveAfterDelete("v", all, "b0", "b0"), "b1");
  assert.equal(nextActiveAfterDelete("v", all, "b0", "a1"), "b0");
  assert.equal(nextActiveAfterDelete("w", all, "w0", "w0"), null);
});

test("a take downloads under a name with its number and type", () => {
  assert.equal(takeFileName({ mime_type: "video/mp4" }, 3), "canvasflow-take-3.mp4");
  assert.equal(takeFileName({ mime_type: "image/png" }, 1), "canvasflow-take-1.png");
});
