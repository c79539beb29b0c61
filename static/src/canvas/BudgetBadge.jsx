// The header's remaining budget (GET /api/me/usage): read on load, again whenever a job
// ends (settled or released) or starts (reserved), and after this tab's submits and
// refusals (`commands.watchUsage`); hidden when the budget is unlimited.
import { useEffect, useState } from "react";
import { endedJobsKey, formatMoney, usageLabel } from "../nodes/money.js";

export function BudgetBadge({ api, jobs, commands }) {
  const [usage, setUsage] = useState(null);
  const [nudged, setNudged] = useState(0);
  useEffect(() => commands?.watchUsage?.(() => setNudged((n) => n + 1)), [commands]);
  const key = `${jobs?.size ?? 0}|${endedJobsKey(jobs)}|${nudged}`;
  useEffect(() => {
    let live = true;
    api.usage().then(
      (answer) => live && setUsage(answer),
      () => {}, // an older server without budgets: nothing to show
    );
    return () => {
      live = false;
    };
  }, [api, key]);
  const label = usageLabel(usage);
  if (!label) return null;
  const low = typeof usage.remaining === "number" && usage.remaining <= 0;
  return (
    <span
      className={`budget-badge small${low ? " is-empty" : ""}`}
      id="budget"
      aria-live="polite"
      title={`Spent ${formatMoney(usage.spent ?? 0, usage.currency)}, reserved by running jobs ${formatMoney(usage.reserved ?? 0, usage.currency)}`}
    >
      {label}
    </span>
  );
}
