// What the generating nodes share around Generate: the live job's progress bar with its
// queue position, ETA and an "estimated" mark, and the cost of the next Generate
// (with the budget message when it does not fit). The rules are in money.js.
import { costLabel, progressText } from "./money.js";

export function JobProgress({ view }) {
  const { running, status, pct, figures } = view;
  const text = running ? progressText(status, pct, figures) : "";
  return (
    // always in the DOM, hidden when idle: a screen reader (and a test) follows one bar
    <div className="status-row" hidden={!running}>
      <div
        className={`progress${figures?.estimated ? " is-estimated" : ""}`}
        role="progressbar"
        aria-label={figures?.estimated ? "Generation progress (estimated)" : "Generation progress"}
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow={String(pct)}
        aria-valuetext={text || undefined}
        hidden={!running}
      >
        <div className="progress-fill" style={{ width: `${running ? Math.max(pct, 2) : 0}%` }} />
      </div>
      <span className="progress-text small" data-queue-position={figures?.queuePosition ?? undefined}>
        {text}
      </span>
    </div>
  );
}

/** Under a generating node's settings: the live job's bar, why it failed or was refused
 * (`refusal`: the server's reason for not generating; null while a job runs), who started it. */
export function JobStatusLines({ view, refusal }) {
  return (
    <>
      <JobProgress view={view} />
      {view.errorText && (
        <p className="node-error" role="alert">
          Generation failed: {view.errorText}
        </p>
      )}
      {refusal && (
        <p className="node-error refusal" role="alert">
          Not generated: {refusal}
        </p>
      )}
      {view.createdBy && <p className="muted small created-by">Started by {view.createdBy}</p>}
    </>
  );
}

/** The cost beside Generate ("≈ $0.80") and, below the actions, why Generate is off. */
export function CostTag({ estimate }) {
  const label = costLabel(estimate);
  if (!label) return null;
  return (
    <span className="cost muted small" title="What this Generate is estimated to cost">
      {label}
    </span>
  );
}

export function BudgetNote({ reason }) {
  if (!reason) return null;
  return (
    <p className="node-error budget-note small" role="status">
      {reason}
    </p>
  );
}
