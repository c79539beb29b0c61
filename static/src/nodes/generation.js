// What a generating node may ask for, so its controls stay honest: the combinations
// the server (Veo 3.1, and the local renderer keeping the same table) refuses at submit
// are not offered, and the node says why. Pure, unit-tested; the server still decides
// (a refusal is a 422 whose message the node shows).

export const RESOLUTIONS = ["720p", "1080p"];
export const DURATIONS = [4, 6, 8];
export const ASPECT_RATIOS = ["16:9", "9:16"];
export const IMAGE_ASPECT_RATIOS = ["1:1", "3:2", "2:3", "4:3", "3:4", "4:5", "5:4", "16:9", "9:16", "21:9"];
export const VARIANT_COUNTS = [1, 2, 3, 4];
export const PERSON_GENERATION = ["", "dont_allow", "allow_adult"];
export const PERSON_LABELS = { "": "Model default", dont_allow: "No people", allow_adult: "Adults only" };
export const MAX_SEED = 4_294_967_295;

/**
 * The durations a video node may use with these settings and inputs
 * (`{resolution, aspect_ratio}`, `{lastFrame, references, extend}` booleans/counts),
 * and why the others are not offered: `{durations, resolutions, reason}`.
 */
export function videoConstraints(settings, inputs = {}) {
  const eightOnly = [];
  if (settings.resolution === "1080p") eightOnly.push("1080p");
  if (inputs.lastFrame) eightOnly.push("first-to-last-frame clips");
  if (inputs.references) eightOnly.push("reference images");
  if (inputs.extend) eightOnly.push("extensions");
  const resolutions = inputs.extend ? ["720p"] : RESOLUTIONS;
  let reason = "";
  if (eightOnly.length) reason = `${capital(joinAnd(eightOnly))} ${eightOnly.length > 1 ? "are" : "is"} made as 8 s clips only.`;
  if (inputs.extend) reason = `${reason} Extensions are 720p.`.trim();
  if (inputs.references && settings.aspect_ratio === "9:16") reason = `${reason} Reference images need 16:9.`.trim();
  return { durations: eightOnly.length ? [8] : DURATIONS, resolutions, reason };
}

/** Settings made to fit the constraints: a duration or resolution not offered becomes one that is. */
export function fitSettings(settings, inputs = {}) {
  const out = { ...settings };
  const first = videoConstraints(out, inputs);
  if (!first.resolutions.includes(out.resolution)) out.resolution = first.resolutions[0];
  const { durations } = videoConstraints(out, inputs);
  if (!durations.includes(Number(out.duration))) out.duration = durations.at(-1);
  return out;
}

/** The generation options a node keeps in its data, with defaults: `{variants, seed, ...}`. */
export function generationOptions(data = {}) {
  const n = Number(data.variants);
  return {
    variants: VARIANT_COUNTS.includes(n) ? n : 1,
    seed: Number.isInteger(data.seed) && data.seed >= 0 && data.seed <= MAX_SEED ? data.seed : null,
    generate_audio: data.generate_audio === true,
    enhance_prompt: typeof data.enhance_prompt === "boolean" ? data.enhance_prompt : null,
    person_generation: PERSON_GENERATION.includes(data.person_generation) ? data.person_generation : "",
  };
}

/** A seed typed by the user: an integer in range, null for empty, or undefined when invalid. */
export function parseSeed(text) {
  const t = String(text ?? "").trim();
  if (!t) return null;
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n <= MAX_SEED ? n : undefined;
}

/** The optional members of a generate-video body from a node's options (unset ones left out). */
export function videoOptionsBody(options) {
  const body = { number_of_videos: options.variants };
  if (options.seed !== null) body.seed = options.seed;
  if (options.generate_audio) body.generate_audio = true;
  if (options.enhance_prompt !== null) body.enhance_prompt = options.enhance_prompt;
  if (options.person_generation) body.person_generation = options.person_generation;
  return body;
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);
function joinAnd(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}
