// node --test: the honest generation controls.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fitSettings, generationOptions, parseSeed, videoConstraints, videoOptionsBody } from "./generation.js";

test("1080p, last frames, references and extensions offer 8 s only, and say why", () => {
  assert.deepEqual(videoConstraints({ resolution: "720p", aspect_ratio: "16:9" }).durations, [4, 6, 8]);
  const hd = videoConstraints({ resolution: "1080p", aspect_ratio: "16:9" });
  assert.deepEqual(hd.durations, [8]);
  assert.equal(hd.reason, "1080p is made as 8 s clips only.");
  const both = videoConstraints({ resolution: "1080p", aspect_ratio: "9:16" }, { references: 2 });
  assert.equal(both.reason, "1080p and reference images are made as 8 s clips only. Reference images need 16:9.");
  const ext = videoConstraints({ resolution: "720p", aspect_ratio: "16:9" }, { extend: true });
  assert.deepEqual(ext.resolutions, ["720p"]);
  assert.deepEqual(ext.durations, [8]);
});

test("settings are fitted: 1080p with 4 s becomes 8 s; an extension's 1080p becomes 720p", () => {
  assert.deepEqual(fitSettings({ resolution: "1080p", duration: 4, aspect_ratio: "16:9" }), { resolution: "1080p", duration: 8, aspect_ratio: "16:9" });
  assert.deepEqual(fitSettings({ resolution: "720p", duration: 4, aspect_ratio: "16:9" }), { resolution: "720p", duration: 4, aspect_ratio: "16:9" });
  assert.deepEqual(fitSettings({ resolution: "1080p", duration: 4, aspect_ratio: "16:9" }, { extend: true }), { resolution: "720p", duration: 8, aspect_ratio: "16:9" });
});

test("options default sanely; only what is set goes into the body", () => {
  assert.deepEqual(generationOptions({}), { variants: 1, seed: null, generate_audio: false, enhance_prompt: null, person_generation: "" });
  assert.deepEqual(videoOptionsBody(generationOptions({})), { number_of_videos: 1 });
  const set = generationOptions({ variants: 4, seed: 42, generate_audio: true, enhance_prompt: false, person_generation: "allow_adult" });
  assert.deepEqual(videoOptionsBody(set), { number_of_videos: 4, seed: 42, generate_audio: true, enhance_prompt: false, person_generation: "allow_adult" });
  assert.equal(generationOptions({ variants: 9, seed: -1 }).variants, 1);
  assert.equal(generationOptions({ seed: -1 }).seed, null);
});

test("a typed seed is a whole number in range, empty for random, else refused", () => {
  assert.equal(parseSeed(""), null);
  assert.equal(parseSeed(" 42 "), 42);
  assert.equal(parseSeed("4294967295"), 4294967295);
  assert.equal(parseSeed("4294967296"), undefined);
  assert.equal(parseSeed("-3"), undefined);
  assert.equal(parseSeed("1.5"), undefined);
});
