// Money and waiting, as the nodes and the header show them: the cost of a request
// before Generate (POST /api/ai/estimate[-image] answers `{cost, currency,
// budget_remaining}` in currency units, e.g. 0.8 USD), whether Generate may spend it,
// the 402 budget_exceeded message, a pending job's place in the queue and its ETA, an
// estimated progress label, and the remaining budget of GET /api/me/usage. Pure,
// unit-tested (money.test.js).

const SYMBOLS = { USD: "$", EUR: "€", GBP: "£" };

/** An amount in currency units: "$0.80" (USD), "12.50 CHF" for a currency without a symbol. */
export function formatMoney(amount, currency = "USD") {
  if (typeof amount !== "number" || !Number.isFinite(amount)) return "";
  // sub-cent amounts keep their figures: a $0.004 image is not "$0.00"
  const digits = amount !== 0 && Math.abs(amount) < 0.01 ? 3 : 2;
  const text = Math.max(0, amount).toFixed(digits);
  const symbol = SYMBOLS[currency || "USD"];
  return symbol ? `${symbol}${text}` : `${text} ${currency}`;
}

/** The cost next to Generate: "≈ $0.80", or "" without an estimate. */
export function costLabel(estimate) {
  if (!estimate || typeof estimate.cost !== "number") return "";
  return `≈ ${formatMoney(estimate.cost, estimate.currency)}`;
}

/** The message of a budget that does not cover a cost (from an estimate or a 402's details). */
export function budgetMessage({ cost, budget_remaining: remaining, currency } = {}) {
  const left = typeof remaining === "number" ? formatMoney(remaining, currency) : "";
  const costs = typeof cost === "number" ? formatMoney(cost, currency) : "";
  if (costs && left) return `Over budget: this costs ${costs} and ${left} remains of your budget this period.`;
  if (left) return `Over budget: ${left} remains of your budget this period.`;
  return "Over budget: this does not fit in what remains of your budget this period.";
}

/**
 * Whether Generate may be pressed, given the node's own readiness and the estimate:
 * `{disabled, reason}`. Over budget (remaining < cost) disables it with the budget
 * message; no estimate yet (or a failed one) leaves it to the server to decide.
 */
export function generateState({ canGenerate = true, submitting = false, estimate = null } = {}) {
  if (!canGenerate || submitting) return { disabled: true, reason: "" };
  if (estimate && typeof estimate.cost === "number" && typeof estimate.budget_remaining === "number" && estimate.budget_remaining < estimate.cost) {
    return { disabled: true, reason: budgetMessage(estimate) };
  }
  return { disabled: false, reason: "" };
}

/** What a refused generate says in the node: a 402 tells what remains. */
export function refusalText(err) {
  if (err && err.code === "budget_exceeded") return budgetMessage(err.details || {});
  return (err && err.message) || "The request was refused.";
}

/**
 * Whether a failed estimate is worth showing: a request generate would refuse (422, 403)
 * says why; a lost connection or a server without estimates (404, 405) says nothing.
 */
export function showsEstimateError(err) {
  return !!err && (err.status === 422 || err.status === 403) && err.code !== "missing_prompt" && err.code !== "input_missing";
}

/** Seconds as a short duration: "12 s", "1 min 35 s", "6 min". */
export function formatEta(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  if (m >= 10 || rest === 0) return `${Math.round(s / 60)} min`;
  return `${m} min ${rest} s`;
}

/** The queue and progress figures of a job as a node keeps them (null members when unknown). */
export function jobFigures(job) {
  if (!job) return { queuePosition: null, etaS: null, estimated: false };
  return {
    queuePosition: Number.isInteger(job.queue_position) ? job.queue_position : null,
    etaS: typeof job.eta_s === "number" ? job.eta_s : null,
    estimated: job.progress_estimated === true || job.estimated === true,
  };
}

/**
 * The text beside a live job's progress bar: "Queued · 3rd in line · about 1 min 35 s",
 * "42%", "~42% (estimated) · about 20 s left"; "" when not live.
 */
export function progressText(status, pct, figures = {}) {
  const eta = formatEta(figures.etaS);
  if (status === "pending") {
    const parts = ["Queued"];
    if (figures.queuePosition === 1) parts.push("next in line");
    else if (figures.queuePosition > 1) parts.push(`${ordinal(figures.queuePosition)} in line`);
    if (eta) parts.push(`ready in about ${eta}`);
    return parts.length === 1 ? "Queued…" : parts.join(" · ");
  }
  if (status === "processing") {
    const bar = figures.estimated ? `~${pct}% (estimated)` : `${pct}%`;
    if (!eta) return bar;
    return `${bar} · ${figures.etaS < 1 ? "any moment now" : `about ${eta} left`}`;
  }
  return "";
}

function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th"}`;
}

/** The header's budget: "Budget: $8.00 left of $12.00 this month"; null when unlimited. */
export function usageLabel(usage) {
  if (!usage || usage.budget === null || usage.budget === undefined) return null;
  const period = { day: "today", week: "this week", month: "this month" }[usage.period] || "";
  const left = formatMoney(usage.remaining ?? 0, usage.currency);
  return `Budget: ${left} left of ${formatMoney(usage.budget, usage.currency)}${period ? ` ${period}` : ""}`;
}

/** A fingerprint of the jobs that ended: when it changes, the usage is read again. */
export function endedJobsKey(jobs) {
  const ended = [];
  for (const job of jobs?.values?.() || []) {
    if (job.status === "completed" || job.status === "failed" || job.status === "cancelled") ended.push(job.job_id);
  }
  return ended.sort().join(",");
}

/**
 * Run `attempt(key)` with one Idempotency-Key for one Generate click: a network error
 * (status 0: the answer may have been lost) is retried with the same key, so the server
 * answers with the job it made, never a second one. Other errors are thrown at once.
 */
export async function submitOnce(attempt, { key = newIdempotencyKey(), tries = 3, wait = (ms) => new Promise((r) => setTimeout(r, ms)) } = {}) {
  for (let i = 1; ; i++) {
    try {
      return await attempt(key);
    } catch (err) {
      if (err?.status !== 0 || i >= tries) throw err;
      await wait(500 * i);
    }
  }
}

export function newIdempotencyKey() {
  return globalThis.crypto.randomUUID();
}
