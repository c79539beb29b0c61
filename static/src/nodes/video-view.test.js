// node --test: what a video node shows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deriveVideo, jobIdOfKey, rememberInputs } from "./video-view.js";

const JOB = "11111111-2222-4333-8444-555555555555";
const KEY = `videos/P/${JOB}.mp4`;

function graph({ prompt = "a fox", video = {}, extraPrompt = false } = {}) {
  const nodes = new Map([
    ["p", { id: "p", type: "prompt", data: { prompt } }],
    ["i", { id: "i", type: "image", data: { image_key: "images/P/1.png" } }],
    ["v", { id: "v", type: "video", status: "idle", data: { resolution: "720p", duration: 8, aspect_ratio: "16:9", ...video } }],
    ["q", { id: "q", type: "prompt", data: { prompt: "second" } }],
  ]);
  const connections = new Map([
    ["c1", { id: "c1", source_id: "p", target_id: "v", created_at: "1" }],
    ["c2", { id: "c2", source_id: "i", target_id: "v", created_at: "2" }],
  ]);
  if (extraPrompt) connections.set("c3", { id: "c3", source_id: "q", target_id: "v", created_at: "3" });
  return { nodes, connections };
}

test("inputs come by port; a legacy second prompt is counted, the first is used", () => {
  const g = graph({ extraPrompt: true });
  const view = deriveVideo(g.nodes.get("v"), g, new Map());
  assert.equal(view.inputs.prompt, "a fox");
  assert.equal(view.inputs.imageKey, "images/P/1.png");
  assert.equal(view.inputs.extraPrompts, 1);
  assert.equal(view.canGenerate, true);
});

test("the clip's settings come from its job, or from what the canvas recorded at submit", () => {
  const recorded = rememberInputs({}, JOB, { prompt: "a fox", imageKey: "images/P/1.png" }, { resolution: "1080p", duration: 4, aspect_ratio: "16:9" });
  const g = graph({ video: { video_key: KEY, video_url: "https://v", inputs_by_job: recorded } });
  const view = deriveVideo(g.nodes.get("v"), g, new Map());
  assert.deepEqual(view.shown.made, { resolution: "1080p", duration: 4, aspect_ratio: "16:9" });
  assert.equal(view.shown.settingsDiffer, true, "the node is set to 720p · 8 s now");
  assert.equal(view.shown.stale, false);
  const jobs = new Map([[JOB, { job_id: JOB, node_id: "v", status: "completed", created_at: "1", result: { video_key: KEY, resolution: "720p", duration: 8, aspect_ratio: "16:9" } }]]);
  assert.equal(deriveVideo(g.nodes.get("v"), g, jobs).shown.settingsDiffer, false);
});

test("a clip whose prompt or image changed since it was made is stale", () => {
  const recorded = rememberInputs({}, JOB, { prompt: "a fox", imageKey: "images/P/1.png" }, {});
  const g = graph({ prompt: "a wolf", video: { video_key: KEY, video_url: "https://v", inputs_by_job: recorded } });
  assert.equal(deriveVideo(g.nodes.get("v"), g, new Map()).shown.stale, true);
});

test("a running job drives status and progress; Generate waits for it", () => {
  const g = graph();
  const jobs = new Map([["j", { job_id: "j", node_id: "v", status: "processing", progress: 0.42, created_at: "2" }]]);
  const view = deriveVideo(g.nodes.get("v"), g, jobs);
  assert.equal(view.running, true);
  assert.equal(view.pct, 42);
  assert.equal(view.canGenerate, false);
  assert.equal(view.jobId, "j");
});

test("without a prompt the node says what to connect", () => {
  const g = graph({ prompt: "  " });
  assert.match(deriveVideo(g.nodes.get("v"), g, new Map()).hint, /Write the connected prompt/);
  g.connections.delete("c1");
  assert.match(deriveVideo(g.nodes.get("v"), g, new Map()).hint, /Prompt input/);
});

test("the remembered inputs keep the newest few jobs", () => {
  let data = {};
  for (let i = 0; i < 8; i += 1) data = { inputs_by_job: rememberInputs(data, `job${i}`, { prompt: String(i), imageKey: null }, {}) };
  assert.equal(Object.keys(data.inputs_by_job).length, 5);
  assert.ok("job7" in data.inputs_by_job);
  assert.equal(jobIdOfKey(KEY), JOB);
  assert.equal(jobIdOfKey("images/P/1.png"), null);
});

test("1080p stored with 4 s is shown and sent as 8 s; the active take says what the clip was made with", () => {
  const g = graph({ video: { resolution: "1080p", duration: 4, video_key: "videos/P/x-1.mp4", video_url: "https://v" } });
  g.nodes.set("v", { ...g.nodes.get("v"), active_take_id: "t" });
  const takes = new Map([["t", { id: "t", node_id: "v", job_id: JOB, version: 3, index: 1, params: { resolution: "720p", duration: 6, aspect_ratio: "16:9" } }]]);
  const view = deriveVideo(g.nodes.get("v"), g, new Map(), { takes });
  assert.equal(view.settings.duration, 8);
  assert.deepEqual(view.constraints.durations, [8]);
  assert.equal(view.constraints.reason, "1080p is made as 8 s clips only.");
  assert.deepEqual(view.shown.made, { resolution: "720p", duration: 6, aspect_ratio: "16:9" });
  assert.equal(view.activeTakeId, "t");
  assert.deepEqual(view.takes.map((t) => t.id), ["t"]);
});
