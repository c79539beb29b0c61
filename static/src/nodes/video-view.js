// What a video node shows, derived from the graph: its inputs by port, the job that
// drives its status, the clip on show with what it was made from, and whether its
// inputs or settings have changed since. Pure, so the rules are unit-tested.
import { targetPortOf } from "../canvas/ports.js";
import { jobFigures } from "./money.js";
import { fitSettings, generationOptions, videoConstraints } from "./generation.js";
import { takesOf } from "./takes.js";

export { ASPECT_RATIOS, DURATIONS, RESOLUTIONS } from "./generation.js";
export const VIDEO_DEFAULTS = { resolution: "720p", duration: 8, aspect_ratio: "16:9" };
/** How many submits a video node remembers the inputs of (data.inputs_by_job). */
export const REMEMBERED_JOBS = 5;
const LIVE = new Set(["pending", "processing"]);

/** Whether a job status means the job can still change. */
export const isLive = (status) => LIVE.has(status);

/** The job id in a video key `videos/{project_id}/{job_id}.mp4`, or null. */
export function jobIdOfKey(key) {
  const match = /^videos\/[^/]+\/([0-9a-f-]{36})\.mp4$/i.exec(key || "");
  return match ? match[1] : null;
}

/** The node's most recent job, or null. */
export function latestJob(nodeId, jobs) {
  let latest = null;
  for (const job of jobs.values()) {
    if (job.node_id === nodeId && (!latest || job.created_at > latest.created_at)) latest = job;
  }
  return latest;
}

/** Source nodes wired into `nodeId`, by input port (oldest connection first in each). */
export function inputsByPort(nodeId, graph) {
  const out = {};
  const into = [...graph.connections.values()]
    .filter((c) => c.target_id === nodeId)
    .sort((a, b) => (a.created_at || "").localeCompare(b.created_at || ""));
  for (const c of into) {
    const port = targetPortOf(c, graph.nodes);
    const source = graph.nodes.get(c.source_id);
    if (port && source) (out[port] ||= []).push(source);
  }
  return out;
}

/** "720p · 8 s · 16:9" */
export function describeSettings(s) {
  return s ? [s.resolution, s.duration && `${s.duration} s`, s.aspect_ratio].filter(Boolean).join(" · ") : "";
}

/** The inputs a submit would use now: what Generate sends, and what a take is compared with. */
export function currentInputs(nodeId, graph) {
  const inputs = inputsByPort(nodeId, graph);
  const prompt = inputs.prompt?.[0] || null;
  const image = inputs.first_frame?.[0] || null;
  const last = inputs.last_frame?.[0] || null;
  const extend = inputs.extend?.[0] || null;
  return {
    promptNode: prompt,
    imageNode: image,
    prompt: (prompt?.data?.prompt || "").trim(),
    imageKey: image?.data?.image_key || null,
    lastFrameNode: last,
    lastFrame: !!last,
    references: inputs.references?.length || 0,
    extendNode: extend,
    extend: !!extend,
    extraPrompts: Math.max(0, (inputs.prompt?.length || 0) - 1),
  };
}

/**
 * Everything the video node draws, from its node, the graph, the project's jobs and
 * (`extra.takes`) the takes the store holds.
 */
export function deriveVideo(node, graph, jobs, extra = {}) {
  const data = node.data || {};
  const now = currentInputs(node.id, graph);
  // what Generate sends: the stored settings made to fit what the model can do
  const settings = fitSettings(
    {
      resolution: data.resolution || VIDEO_DEFAULTS.resolution,
      duration: Number(data.duration || VIDEO_DEFAULTS.duration),
      aspect_ratio: data.aspect_ratio || VIDEO_DEFAULTS.aspect_ratio,
    },
    now,
  );
  const constraints = videoConstraints(settings, now);
  const job = latestJob(node.id, jobs);
  const status = job ? job.status : node.status === "processing" ? "pending" : node.status || "idle";
  const running = isLive(status);
  const pct = job ? Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100) : 0;

  // the clip on show and what it was made from: the job's result, else what this
  // canvas recorded when it submitted that job
  const key = data.video_key || null;
  let shown = null;
  if (key && data.video_url) {
    const madeBy = jobIdOfKey(key) || (node.active_take_id && extra.takes?.get(node.active_take_id)?.job_id) || null;
    const result = [...jobs.values()].find((j) => j.result?.video_key === key)?.result;
    const recorded = (madeBy && data.inputs_by_job?.[madeBy]) || null;
    const take = node.active_take_id ? extra.takes?.get(node.active_take_id) : null;
    const made = take?.params?.resolution
      ? { resolution: take.params.resolution, duration: take.params.duration, aspect_ratio: take.params.aspect_ratio }
      : result
      ? { resolution: result.resolution, duration: result.duration, aspect_ratio: result.aspect_ratio }
      : recorded
        ? { resolution: recorded.resolution, duration: recorded.duration, aspect_ratio: recorded.aspect_ratio }
        : null;
    const stale = !!recorded && (recorded.prompt !== now.prompt || (recorded.image_key || null) !== now.imageKey);
    const settingsDiffer = !!made && describeSettings(made) !== describeSettings(settings);
    shown = { key, url: data.video_url, made, stale, settingsDiffer };
  }

  const errorText = status === "failed" ? job?.error || node.error_message || "Generation failed." : "";
  let hint = "";
  if (!now.promptNode) hint = "Drag from a prompt node's output to this node's Prompt input.";
  else if (!now.prompt) hint = "Write the connected prompt to generate.";
  return {
    settings,
    status,
    running,
    pct,
    jobId: job?.job_id || null,
    figures: jobFigures(job),
    errorText,
    inputs: now,
    canGenerate: !!now.prompt && !running,
    hint,
    shown,
    constraints,
    options: generationOptions(data),
    createdBy: job?.created_by?.email || null,
    takes: extra.takes ? takesOf(node.id, extra.takes) : [],
    activeTakeId: node.active_take_id || null,
  };
}

/** data.inputs_by_job after submitting `jobId` with `inputs` and `settings`: newest few kept. */
export function rememberInputs(data, jobId, inputs, settings) {
  const known = Object.entries(data?.inputs_by_job || {});
  const entry = { prompt: inputs.prompt, image_key: inputs.imageKey, ...settings, at: Date.now() };
  const kept = known.sort((a, b) => (b[1].at || 0) - (a[1].at || 0)).slice(0, REMEMBERED_JOBS - 1);
  return Object.fromEntries([[jobId, entry], ...kept]);
}
