// node --test: the store's view as React Flow nodes and edges.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFlowMapper } from "./flow.js";
import { deriveVideo } from "../nodes/video-view.js";

const view = (nodes, connections = [], selected = []) => ({
  nodes: new Map(nodes.map((n) => [n.id, n])),
  connections: new Map(connections.map((c) => [c.id, c])),
  jobs: new Map(),
  selectedNodes: new Set(selected),
  selectedEdges: new Set(),
  measured: new Map(),
});

test("unchanged nodes and edges keep their objects; a changed one gets a new object", () => {
  const toFlow = createFlowMapper({ video: deriveVideo });
  const p = { id: "p", type: "prompt", x: 0, y: 0, data: { prompt: "fox" } };
  const v = { id: "v", type: "video", x: 300, y: 0, data: {} };
  const c = { id: "c", source_id: "p", target_id: "v" };
  const first = toFlow(view([p, v], [c]));
  assert.equal(first.edges[0].targetHandle, "prompt");
  assert.equal(first.nodes[1].data.view.inputs.prompt, "fox");
  const again = toFlow(view([p, v], [c]));
  assert.equal(again.nodes[0], first.nodes[0]);
  assert.equal(again.edges[0], first.edges[0]);
  // the prompt's text changes: the prompt node and the video node it feeds change
  const p2 = { ...p, data: { prompt: "wolf" } };
  const third = toFlow(view([p2, v], [c], ["p"]));
  assert.notEqual(third.nodes[0], first.nodes[0]);
  assert.equal(third.nodes[0].selected, true);
  assert.equal(third.nodes[1].data.view.inputs.prompt, "wolf");
  assert.equal(third.nodes[0].ariaLabel, "Prompt “wolf”");
});
