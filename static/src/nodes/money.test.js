// node --test: cost, budget, queue and ETA labels.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  budgetMessage, costLabel, endedJobsKey, formatEta, formatMoney, generateState, jobFigures,
  progressText, refusalText, showsEstimateError, submitOnce, usageLabel,
} from "./money.js";

test("amounts are in currency units: dollars with cents, sub-cent figures kept", () => {
  assert.equal(formatMoney(0.8, "USD"), "$0.80");
  assert.equal(formatMoney(12, "USD"), "$12.00");
  assert.equal(formatMoney(0.004, "USD"), "$0.004");
  assert.equal(formatMoney(0, "USD"), "$0.00");
  assert.equal(formatMoney(1.5, "CHF"), "1.50 CHF");
  assert.equal(formatMoney(null), "");
  assert.equal(costLabel({ cost: 0.8, currency: "USD", budget_remaining: null }), "≈ $0.80");
  assert.equal(costLabel(null), "");
});

test("Generate is disabled with the budget message when the remaining budget is below the cost", () => {
  assert.deepEqual(generateState({ estimate: { cost: 0.8, currency: "USD", budget_remaining: 1.6 } }), { disabled: false, reason: "" });
  assert.deepEqual(generateState({ estimate: { cost: 0.8, currency: "USD", budget_remaining: null } }), { disabled: false, reason: "" });
  assert.deepEqual(generateState({ estimate: { cost: 0.8, budget_remaining: 0.8 } }).disabled, false);
  const over = generateState({ estimate: { cost: 0.8, currency: "USD", budget_remaining: 0.4 } });
  assert.equal(over.disabled, true);
  assert.match(over.reason, /costs \$0\.80 and \$0\.40 remains/);
  assert.deepEqual(generateState({ canGenerate: false }), { disabled: true, reason: "" });
  assert.deepEqual(generateState({ submitting: true, estimate: null }), { disabled: true, reason: "" });
  assert.deepEqual(generateState({ estimate: null }), { disabled: false, reason: "" });
});

test("a 402 budget_exceeded says what remains; other refusals their message", () => {
  const err = { status: 402, code: "budget_exceeded", message: "…", details: { code: "budget_exceeded", cost: 0.8, budget_remaining: 0.4, currency: "USD" } };
  assert.match(refusalText(err), /\$0\.40 remains/);
  assert.equal(refusalText({ code: "invalid_body", message: "bad duration" }), "bad duration");
  assert.match(budgetMessage({ budget_remaining: 0, currency: "USD" }), /\$0\.00 remains/);
});

test("ETAs read as seconds and minutes", () => {
  assert.equal(formatEta(41.5), "42 s");
  assert.equal(formatEta(95), "1 min 35 s");
  assert.equal(formatEta(120), "2 min");
  assert.equal(formatEta(360), "6 min");
  assert.equal(formatEta(null), "");
  assert.equal(formatEta(-1), "");
});

test("the queue position, ETA and an estimated progress are labelled", () => {
  const pending = jobFigures({ status: "pending", queue_position: 3, eta_s: 95 });
  assert.equal(progressText("pending", 0, pending), "Queued · 3rd in line · ready in about 1 min 35 s");
  assert.equal(progressText("pending", 0, jobFigures({ queue_position: 1, eta_s: null })), "Queued · next in line");
  assert.equal(progressText("pending", 0, jobFigures({ queue_position: 12 })), "Queued · 12th in line");
  assert.equal(progressText("pending", 0, jobFigures(null)), "Queued…");
  const veo = jobFigures({ status: "processing", progress: 0.42, progress_estimated: true, eta_s: 20 });
  assert.equal(progressText("processing", 42, veo), "~42% (estimated) · about 20 s left");
  assert.equal(progressText("processing", 99, { ...veo, etaS: 0 }), "~99% (estimated) · any moment now");
  assert.equal(progressText("processing", 42, jobFigures({ progress: 0.42 })), "42%");
  assert.equal(progressText("completed", 100, veo), "");
});

test("the header's budget: remaining of budget, hidden when unlimited", () => {
  assert.equal(usageLabel({ period: "month", spent: 3.2, reserved: 0.8, remaining: 8, budget: 12, currency: "USD" }), "Budget: $8.00 left of $12.00 this month");
  assert.equal(usageLabel({ period: "day", remaining: 0, budget: 1, currency: "USD" }), "Budget: $0.00 left of $1.00 today");
  assert.equal(usageLabel({ period: "month", remaining: null, budget: null, currency: "USD" }), null);
  assert.equal(usageLabel(null), null);
});

test("the ended jobs' fingerprint changes when a job ends", () => {
  const jobs = new Map([["a", { job_id: "a", status: "processing" }], ["b", { job_id: "b", status: "completed" }]]);
  const before = endedJobsKey(jobs);
  jobs.set("a", { job_id: "a", status: "failed" });
  assert.notEqual(endedJobsKey(jobs), before);
  assert.equal(endedJobsKey(jobs), "a,b");
});

test("one click, one Idempotency-Key: a lost answer is retried with the same key", async () => {
  const keys = [];
  const job = await submitOnce(
    async (key) => {
      keys.push(key);
      if (keys.length < 3) throw Object.assign(new Error("offline"), { status: 0 });
      return { job_id: "j" };
    },
    { wait: async () => {} },
  );
  assert.deepEqual(job, { job_id: "j" });
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1);
  assert.match(keys[0], /^[0-9a-f-]{36}$/);
  // a refusal is not retried
  let calls = 0;
  await assert.rejects(submitOnce(async () => { calls++; throw Object.assign(new Error("no"), { status: 402 }); }, { wait: async () => {} }), /no/);
  assert.equal(calls, 1);
  // two clicks, two keys
  const k1 = []; const k2 = [];
  await submitOnce(async (k) => k1.push(k));
  await submitOnce(async (k) => k2.push(k));
  assert.notEqual(k1[0], k2[0]);
});

test("an estimate refused as generate would be says why; a missing endpoint or a lost answer does not", () => {
  assert.equal(showsEstimateError({ status: 422, code: "unsupported_resolution" }), true);
  assert.equal(showsEstimateError({ status: 403, code: "forbidden_role" }), true);
  assert.equal(showsEstimateError({ status: 422, code: "missing_prompt" }), false);
  assert.equal(showsEstimateError({ status: 404, code: "http_404" }), false);
  assert.equal(showsEstimateError({ status: 0, code: "network_error" }), false);
  assert.equal(showsEstimateError(null), false);
});
