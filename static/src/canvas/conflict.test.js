// node --test: rebasing a stale data write onto the current node.
import assert from "node:assert/strict";
import { test } from "node:test";
import { keepBoth, rebaseData } from "./conflict.js";

const node = (data, version = 18) => ({ id: "n", data, version });

test("someone only moved the node: the edit is resent against the current version", () => {
  const r = rebaseData({ prompt: "a fox" }, { prompt: "a red fox" }, node({ prompt: "a fox" }));
  assert.deepEqual(r, { resend: { data: { prompt: "a red fox" } }, version: 18 });
});

test("someone typed something else into the same prompt: a conflict with both texts", () => {
  const r = rebaseData({ prompt: "a fox" }, { prompt: "a fox, by Ben" }, node({ prompt: "a fox, by Ann" }));
  assert.deepEqual(r.conflict, { key: "prompt", mine: "a fox, by Ben", theirs: "a fox, by Ann", base: "a fox", version: 18 });
});

test("they wrote what we meant: nothing left to send", () => {
  assert.deepEqual(rebaseData({ prompt: "a" }, { prompt: "b" }, node({ prompt: "b" })), { resend: null, version: 18 });
});

test("settings are last-writer-wins: ours is resent over theirs", () => {
  const r = rebaseData({ resolution: "720p" }, { resolution: "1080p", duration: 8 }, node({ resolution: "720p", duration: 4, prompt: "x" }, 20));
  assert.deepEqual(r, { resend: { data: { resolution: "1080p", duration: 8 } }, version: 20 });
});

test("keeping both texts puts ours first, and never doubles one that holds the other", () => {
  assert.equal(keepBoth("mine", "theirs"), "mine\n\ntheirs");
  assert.equal(keepBoth("a fox and more", "a fox"), "a fox and more");
  assert.equal(keepBoth("a fox", "a fox, longer"), "a fox, longer");
  assert.equal(keepBoth("", "theirs"), "theirs");
});
