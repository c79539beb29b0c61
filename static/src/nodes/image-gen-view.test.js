// node --test: what an image-generation node shows and sends.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deriveImageGen, imageRequest } from "./image-gen-view.js";

function graph(prompt = "a lighthouse", data = {}) {
  return {
    nodes: new Map([
      ["p", { id: "p", type: "prompt", data: { prompt } }],
      ["g", { id: "g", type: "image_gen", status: "idle", data, active_take_id: "t2" }],
    ]),
    connections: new Map([["c", { id: "c", source_id: "p", target_id: "g", target_port: "prompt" }]]),
  };
}

test("the prompt comes by its port; options and the author of the latest job are shown", () => {
  const g = graph("a lighthouse", { aspect_ratio: "1:1", variants: 3, seed: 5 });
  const jobs = new Map([["j", { job_id: "j", node_id: "g", status: "processing", progress: 0.5, created_at: "1", created_by: { email: "ben@x" } }]]);
  const takes = new Map([["t1", { id: "t1", node_id: "g", version: 2, index: 0 }], ["t2", { id: "t2", node_id: "g", version: 4, index: 0 }]]);
  const view = deriveImageGen(g.nodes.get("g"), g, jobs, { takes });
  assert.equal(view.prompt, "a lighthouse");
  assert.equal(view.running, true);
  assert.equal(view.pct, 50);
  assert.equal(view.canGenerate, false, "not while a job runs");
  assert.equal(view.createdBy, "ben@x");
  assert.deepEqual(view.takes.map((t) => t.id), ["t2", "t1"]);
  assert.deepEqual(imageRequest("g", view), { node_id: "g", aspect_ratio: "1:1", number_of_images: 3, seed: 5 });
});

test("without a prompt it says what to connect, and defaults to one 16:9 image", () => {
  const g = graph("  ");
  const view = deriveImageGen(g.nodes.get("g"), g, new Map());
  assert.equal(view.canGenerate, false);
  assert.equal(view.hint, "Write the connected prompt to generate.");
  assert.deepEqual(imageRequest("g", view), { node_id: "g", aspect_ratio: "16:9", number_of_images: 1 });
});

test("a pending job's queue position and ETA, and an estimated progress, reach the view", () => {
  const g = graph("a lighthouse");
  const pending = new Map([["j", { job_id: "j", node_id: "g", status: "pending", progress: 0, queue_position: 2, eta_s: 30, created_at: "1" }]]);
  assert.deepEqual(deriveImageGen(g.nodes.get("g"), g, pending).figures, { queuePosition: 2, etaS: 30, estimated: false });
  const running = new Map([["j", { job_id: "j", node_id: "g", status: "processing", progress: 0.3, progress_estimated: true, queue_position: null, eta_s: 12, created_at: "1" }]]);
  assert.deepEqual(deriveImageGen(g.nodes.get("g"), g, running).figures, { queuePosition: null, etaS: 12, estimated: true });
  assert.deepEqual(deriveImageGen(g.nodes.get("g"), g, new Map()).figures, { queuePosition: null, etaS: null, estimated: false });
});
