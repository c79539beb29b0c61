// node --test: what Generate and the estimate send (issue 17): the same body, and one
// Idempotency-Key per click, reused when a lost answer is retried.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applySnapshot, emptyState } from "../../cf-client.js";
import { createCommands } from "./commands.js";
import { LiveStore } from "./store.js";
import { deriveVideo } from "../nodes/video-view.js";

const P = "p1";
const JOB = { job_id: "j1", node_id: "v", project_id: P, type: "video", status: "pending", progress: 0, created_at: "2026-12-01T00:00:00Z" };

function setup(api, jobs = []) {
  const store = new LiveStore(P);
  const state = emptyState(P);
  store.attach(state);
  const snapshot = {
    type: "snapshot", project_id: P, seq: 1, jobs,
    nodes: [
      { id: "p", type: "prompt", x: 0, y: 0, data: { prompt: "a fox" } },
      { id: "v", type: "video", x: 300, y: 0, status: "idle", data: { resolution: "720p", duration: 6, aspect_ratio: "16:9", variants: 2 } },
      { id: "g", type: "image_gen", x: 300, y: 300, status: "idle", data: { aspect_ratio: "1:1" } },
    ],
    connections: [
      { id: "c1", source_id: "p", target_id: "v", target_port: "prompt" },
      { id: "c2", source_id: "p", target_id: "g", target_port: "prompt" },
    ],
  };
  applySnapshot(state, snapshot);
  store.onServer("snapshot", snapshot);
  const commands = createCommands({ projectId: P, store, api, notify: () => {} });
  return { store, commands };
}

test("the estimate sends the body generate sends, with an Idempotency-Key on generate only", async () => {
  const calls = [];
  const api = {
    estimateVideo: async (body) => (calls.push(["estimate", body]), { cost: 2.4, currency: "USD", budget_remaining: 10 }),
    estimateImage: async (body) => (calls.push(["estimate-image", body]), { cost: 0.04, currency: "USD", budget_remaining: null }),
    generateVideo: async (body, key) => (calls.push(["generate", body, key]), JOB),
    generateImage: async (body, key) => (calls.push(["generate-image", body, key]), { ...JOB, job_id: "j2", node_id: "g", type: "image" }),
    updateNode: async (id, patch) => ({ id, ...patch }),
  };
  const { commands } = setup(api);
  assert.deepEqual(await commands.estimate("v"), { cost: 2.4, currency: "USD", budget_remaining: 10 });
  await commands.generate("v", { idempotencyKey: "k-1" });
  const [[, estimated], [, sent, key]] = calls;
  assert.deepEqual(estimated, sent);
  assert.deepEqual(sent, { node_id: "v", resolution: "720p", duration: 6, aspect_ratio: "16:9", number_of_videos: 2 });
  assert.equal(key, "k-1");

  await commands.estimate("g");
  await commands.generateImage("g");
  const [, imageEstimate] = calls.find((c) => c[0] === "estimate-image");
  const [, imageSent, imageKey] = calls.find((c) => c[0] === "generate-image");
  assert.deepEqual(imageEstimate, imageSent);
  assert.match(imageKey, /^[0-9a-f-]{36}$/, "a fresh key when the caller names none");
});

test("a lost answer is retried with the same key; a 402 is not retried", async () => {
  const keys = [];
  let fail = 1;
  const api = {
    generateVideo: async (body, key) => {
      keys.push(key);
      if (fail-- > 0) throw Object.assign(new Error("Cannot reach the server."), { status: 0, code: "network_error" });
      return JOB;
    },
    updateNode: async (id, patch) => ({ id, ...patch }),
  };
  const { commands } = setup(api);
  const job = await commands.generate("v", { idempotencyKey: "click-1" });
  assert.equal(job.job_id, "j1");
  assert.deepEqual(keys, ["click-1", "click-1"]);

  const refused = Object.assign(new Error("over budget"), { status: 402, code: "budget_exceeded", details: { cost: 0.8, budget_remaining: 0.4, currency: "USD" } });
  let tries = 0;
  const { commands: c2 } = setup({ generateVideo: async () => { tries++; throw refused; } });
  await assert.rejects(c2.generate("v", { idempotencyKey: "click-2" }), /over budget/);
  assert.equal(tries, 1);
});

test("the snapshot's queue figures reach the video node's view", () => {
  const { store } = setup({}, [{ ...JOB, queue_position: 4, eta_s: 80 }]);
  const view = store.getView();
  const derived = deriveVideo(view.nodes.get("v"), { nodes: view.nodes, connections: view.connections }, view.jobs);
  assert.equal(derived.status, "pending");
  assert.deepEqual(derived.figures, { queuePosition: 4, etaS: 80, estimated: false });
});

test("the header's budget is read again after a submit and after a refusal", async () => {
  let n = 0;
  let refuse = false;
  const api = {
    generateVideo: async () => {
      if (refuse) throw Object.assign(new Error("over budget"), { status: 402, code: "budget_exceeded" });
      return JOB;
    },
    updateNode: async (id, patch) => ({ id, ...patch }),
  };
  const { commands } = setup(api);
  const unwatch = commands.watchUsage(() => n++);
  await commands.generate("v");
  assert.equal(n, 1);
  refuse = true;
  await assert.rejects(commands.generate("v"));
  assert.equal(n, 2);
  unwatch();
  await assert.rejects(commands.generate("v"));
  assert.equal(n, 2);
});
