// node --test: the port rules.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PORTS, TYPED_PORTS, portTableFrom, refuseConnection, setPortTable, targetPortOf, wouldCycle } from "./ports.js";

const graphOf = (nodes, connections = []) => ({
  nodes: new Map(nodes.map(([id, type]) => [id, { id, type }])),
  connections: new Map(connections.map(([id, s, t, port]) => [id, { id, source_id: s, target_id: t, target_port: port }])),
});
const link = (source, target, targetHandle, sourceHandle = "out") => ({ source, sourceHandle, target, targetHandle });
const code = (c, g, table = TYPED_PORTS) => refuseConnection(c, g, table)?.code ?? null;

test("a prompt goes into a video node's prompt port and an image into its image port", () => {
  const g = graphOf([["p", "prompt"], ["i", "image"], ["v", "video"]]);
  assert.equal(code(link("p", "v", "prompt"), g), null);
  assert.equal(code(link("i", "v", "first_frame"), g), null);
});

test("a prompt into a prompt, an image or a video's image port is refused by kind", () => {
  const g = graphOf([["p", "prompt"], ["q", "prompt"], ["i", "image"], ["v", "video"]]);
  assert.equal(code(link("p", "q", null), g), "kind");
  assert.equal(code(link("p", "i", null), g), "kind");
  assert.equal(code(link("p", "v", "first_frame"), g), "kind");
  assert.equal(code(link("i", "v", "prompt"), g), "kind");
});

test("a node without outputs starts nothing, and no node connects to itself", () => {
  const g = graphOf([["v", "video"], ["w", "video"], ["u", "unknown"]]);
  assert.equal(code(link("u", "w", "prompt"), g), "no_output");
  assert.equal(code(link("v", "w", "prompt"), g), "kind");
  assert.equal(code(link("v", "v", "prompt"), g), "self_loop");
});

test("a second prompt into one video node is refused; another video node takes it", () => {
  const g = graphOf(
    [["p", "prompt"], ["q", "prompt"], ["v", "video"], ["w", "video"]],
    [["c1", "p", "v"]],
  );
  assert.equal(code(link("q", "v", "prompt"), g), "full");
  assert.equal(code(link("q", "w", "prompt"), g), null);
  assert.equal(code(link("p", "v", "prompt"), g), "duplicate");
  // unless the connection being replaced is the one in the way
  assert.equal(code({ ...link("q", "v", "prompt"), ignore: "c1" }, g), null);
});

test("references take three images; the fourth is refused", () => {
  const g = graphOf(
    [["a", "image"], ["b", "image"], ["c", "image"], ["d", "image"], ["v", "video"]],
    [["1", "a", "v", "references"], ["2", "b", "v", "references"], ["3", "c", "v", "references"]],
  );
  assert.equal(code(link("d", "v", "references"), g, TYPED_PORTS), "full");
  assert.equal(code(link("d", "v", "first_frame"), g, TYPED_PORTS), null);
});

test("video into extend is fine until it would close a loop", () => {
  const g = graphOf([["v", "video"], ["w", "video"], ["x", "video"]], [["1", "v", "w", "extend"], ["2", "w", "x", "extend"]]);
  assert.equal(code(link("x", "v", "extend"), g, TYPED_PORTS), "cycle");
  assert.equal(code(link("v", "x", "prompt"), g, TYPED_PORTS), "kind");
  const h = graphOf([["v", "video"], ["w", "video"]]);
  assert.equal(code(link("v", "w", "extend"), h, TYPED_PORTS), null);
});

test("image_gen takes a prompt and gives an image to a video node", () => {
  const g = graphOf([["p", "prompt"], ["g", "image_gen"], ["v", "video"]]);
  assert.equal(code(link("p", "g", "prompt"), g, TYPED_PORTS), null);
  assert.equal(code(link("g", "v", "first_frame"), g, TYPED_PORTS), null);
  assert.equal(code(link("g", "v", "prompt"), g, TYPED_PORTS), "kind");
});

test("cycles are found through any path, and a fresh edge is not one", () => {
  const conns = [
    { source_id: "a", target_id: "b" },
    { source_id: "b", target_id: "c" },
  ];
  assert.equal(wouldCycle("c", "a", conns), true);
  assert.equal(wouldCycle("a", "c", conns), false);
  assert.equal(wouldCycle("a", "a", []), true);
});

test("a stored connection without target_port ends at the port its source's kind fits", () => {
  const nodes = new Map([
    ["p", { id: "p", type: "prompt" }],
    ["i", { id: "i", type: "image" }],
    ["v", { id: "v", type: "video" }],
  ]);
  assert.equal(targetPortOf({ source_id: "p", target_id: "v" }, nodes), "prompt");
  assert.equal(targetPortOf({ source_id: "i", target_id: "v" }, nodes), "first_frame");
  assert.equal(targetPortOf({ source_id: "i", target_id: "v", target_port: "last_frame" }, nodes), "last_frame");
  assert.equal(targetPortOf({ source_id: "p", target_id: "gone" }, nodes), null);
});

test("the server's node-types answer becomes the table in force", () => {
  const answer = {
    node_types: [
      { type: "prompt", output: "text", inputs: [] },
      { type: "image_gen", output: "image", inputs: [{ name: "prompt", kind: "text", max_links: 1, label: "Prompt" }] },
    ],
  };
  const table = portTableFrom(answer);
  assert.deepEqual(table.image_gen.inputs, [{ id: "prompt", kind: "text", label: "Prompt", max: 1 }]);
  assert.deepEqual(table.prompt.outputs, [{ id: "out", kind: "text", label: "Text" }]);
  setPortTable(table);
  assert.equal(PORTS.video, undefined);
  assert.equal(refuseConnection(link("p", "g", "prompt"), graphOf([["p", "prompt"], ["g", "image_gen"]])), null);
  setPortTable(structuredClone(TYPED_PORTS));
  assert.equal(PORTS.video.inputs.length, 5);
});
