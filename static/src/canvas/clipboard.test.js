// node --test: copying a group of nodes and placing it for a paste.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PASTE_OFFSET, copyNodes, parseClipboard, placeClip } from "./clipboard.js";

const graph = {
  nodes: new Map([
    ["p", { id: "p", type: "prompt", x: 100, y: 50, data: { prompt: "fox" } }],
    ["i", { id: "i", type: "image", x: 100, y: 300, data: { image_key: "images/P/1.png", image_url: "https://signed" } }],
    ["v", { id: "v", type: "video", x: 400, y: 80, data: { duration: 8 } }],
    ["w", { id: "w", type: "video", x: 900, y: 80, data: {} }],
  ]),
  connections: new Map([
    ["c1", { id: "c1", source_id: "p", target_id: "v" }],
    ["c2", { id: "c2", source_id: "i", target_id: "v" }],
    ["c3", { id: "c3", source_id: "p", target_id: "w" }],
  ]),
};

test("a copy holds the nodes with their data and only the connections among them", () => {
  const clip = copyNodes("P", ["p", "i", "v"], graph);
  assert.deepEqual(clip.nodes.map((n) => n.id), ["p", "i", "v"]);
  assert.deepEqual(clip.nodes[1].data, { image_key: "images/P/1.png" }, "signed URLs are left behind");
  assert.deepEqual(
    clip.connections.map((c) => [c.source, c.target, c.port]),
    [["p", "v", "prompt"], ["i", "v", "first_frame"]],
  );
});

test("a copy survives the trip through storage; anything else is not a clipboard", () => {
  const clip = copyNodes("P", ["p"], graph);
  assert.deepEqual(parseClipboard(JSON.stringify(clip)), clip);
  assert.equal(parseClipboard("plain text"), null);
  assert.equal(parseClipboard(JSON.stringify({ ...clip, nodes: [] })), null);
});

test("a paste lands with its top-left at the pointer, or offset from the originals", () => {
  const clip = copyNodes("P", ["p", "v"], graph);
  const at = placeClip(clip, { x: 1000, y: 1000 });
  assert.deepEqual(at.nodes.map((n) => [n.x, n.y]), [[1000, 1000], [1300, 1030]]);
  const off = placeClip(clip, null);
  assert.deepEqual(off.nodes.map((n) => [n.x, n.y]), [[100 + PASTE_OFFSET, 50 + PASTE_OFFSET], [400 + PASTE_OFFSET, 80 + PASTE_OFFSET]]);
});
