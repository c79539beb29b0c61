// The header's remaining budget (GET /api/me/usage): read on load, again whenever a job
// ends (settled or released) or starts (reserved); hidden when the budget is unlimited.
import { useEffect, useState } from "react";
import { endedJobsKey, formatMoney, usageLabel } from "../nodes/money.js";

export function BudgetBadge({ api, jobs }) {
  const [usage, setUsage] = useState(null);
  const key = `${jobs?.size ?? 0}|${endedJobsKey(jobs)}`;
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
