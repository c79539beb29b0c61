// What an image-generation node shows, derived from the graph: its prompt (the `prompt`
// port), the job that drives its status, the image on show (its active take) and its
// takes. Pure, so the rules are unit-tested.
import { generationOptions } from "./generation.js";
import { jobFigures } from "./money.js";
import { takesOf } from "./takes.js";
import { inputsByPort, isLive, latestJob } from "./video-view.js";

export const IMAGE_GEN_DEFAULTS = { aspect_ratio: "16:9" };

/** Everything the image_gen node draws (`extra.takes`: the takes the store holds). */
export function deriveImageGen(node, graph, jobs, extra = {}) {
  const data = node.data || {};
  const promptNode = inputsByPort(node.id, graph).prompt?.[0] || null;
  const prompt = (promptNode?.data?.prompt || "").trim();
  const job = latestJob(node.id, jobs);
  const status = job ? job.status : node.status === "processing" ? "pending" : node.status || "idle";
  const running = isLive(status);
  const pct = job ? Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100) : 0;
  let hint = "";
  if (!promptNode) hint = "Drag from a prompt node's output to this node's Prompt input.";
  else if (!prompt) hint = "Write the connected prompt to generate.";
  return {
    settings: { aspect_ratio: data.aspect_ratio || IMAGE_GEN_DEFAULTS.aspect_ratio },
    options: generationOptions(data),
    promptNode,
    prompt,
    status,
    running,
    pct,
    jobId: job?.job_id || null,
    figures: jobFigures(job),
    createdBy: job?.created_by?.email || null,
    errorText: status === "failed" ? job?.error || node.error_message || "Generation failed." : "",
    canGenerate: !!prompt && !running,
    hint,
    image: data.image_key && data.image_url ? { key: data.image_key, url: data.image_url } : null,
    takes: extra.takes ? takesOf(node.id, extra.takes) : [],
    activeTakeId: node.active_take_id || null,
  };
}

/** The body of POST /api/ai/generate-image for this node's view (the prompt comes from its port). */
export function imageRequest(nodeId, view) {
  const body = { node_id: nodeId, aspect_ratio: view.settings.aspect_ratio, number_of_images: view.options.variants };
  if (view.options.seed !== null) body.seed = view.options.seed;
  return body;
}
