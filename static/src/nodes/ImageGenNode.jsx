// An image-generation node: a prompt in, images out. Generate makes 1–4 images (each a
// take); the active take is what it shows and what video nodes' image ports consume.
import { memo, useState } from "react";
import { useCommands } from "../canvas/context.js";
import { GenerationOptions } from "./GenerationOptions.jsx";
import { BudgetNote, CostTag, JobStatusLines } from "./JobControls.jsx";
import { generateState, newIdempotencyKey, refusalText, showsEstimateError } from "./money.js";
import { useEstimate } from "./useEstimate.js";
import { IMAGE_ASPECT_RATIOS } from "./generation.js";
import { NodeCard } from "./NodeCard.jsx";
import { TakeStrip } from "./TakeStrip.jsx";

const STATUS_LABELS = { idle: "Idle", pending: "Pending", processing: "Processing", completed: "Completed", failed: "Failed", cancelled: "Cancelled" };

function ImageGenNodeView({ data, selected }) {
  const { node, view, canEdit, presence } = data;
  const commands = useCommands();
  const [submitting, setSubmitting] = useState(false);
  const [refusal, setRefusal] = useState("");
  const sid = (name) => `${name}-${node.id}`;
  const { status, running } = view;
  // the cost of the next Generate, asked again whenever what it would send changes
  const estimateKey = JSON.stringify([view.settings, view.options, !!view.prompt, status, refusal]);
  const { estimate, error: estimateError } = useEstimate(commands, node.id, estimateKey, canEdit && view.canGenerate);
  const gate = generateState({ canGenerate: view.canGenerate, submitting, estimate });

  async function generate() {
    setSubmitting(true);
    setRefusal("");
    try {
      // one key per click: a retry of this click cannot make a second job
      await commands.generateImage(node.id, { idempotencyKey: newIdempotencyKey() });
    } catch (err) {
      setRefusal(refusalText(err));
      commands.notify(refusalText(err), "error");
    } finally {
      setSubmitting(false);
    }
  }
  const change = (to) => commands.setData(node.id, to, { label: "Change image settings" }).catch(() => {});
  const promptValue = view.promptNode
    ? { text: view.prompt || "Connected prompt is empty", missing: !view.prompt }
    : { text: "Connect a prompt node", missing: true };
  const badge = (
    <span className="badge" data-status={status}>
      {STATUS_LABELS[status] || status}
    </span>
  );
  return (
    <NodeCard node={node} selected={selected} badge={badge} status={status} canEdit={canEdit} presence={presence} inputs={{ prompt: promptValue }}>
      {canEdit ? (
        <>
          <div className="settings">
            <div className="setting">
              <label htmlFor={sid("aspect_ratio")}>Aspect</label>
              <select id={sid("aspect_ratio")} className="nodrag" value={view.settings.aspect_ratio} onChange={(e) => change({ aspect_ratio: e.target.value })}>
                {IMAGE_ASPECT_RATIOS.map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <GenerationOptions nodeId={node.id} options={view.options} onChange={change} disabled={running} />
        </>
      ) : (
        <p className="muted small settings-readonly">{view.settings.aspect_ratio} · {view.options.variants} image{view.options.variants === 1 ? "" : "s"}</p>
      )}
      <JobStatusLines view={view} refusal={running ? null : refusal} />
      {canEdit && (
        <div className="node-actions">
          {running ? (
            <button className="btn btn-secondary btn-sm cancel nodrag" type="button" onClick={() => view.jobId && commands.cancel(view.jobId).catch((e) => commands.notify(e.message, "error"))}>
              Cancel
            </button>
          ) : (
            <>
              <button className="btn btn-primary btn-sm generate nodrag" type="button" disabled={gate.disabled} onClick={generate}>
                {submitting ? "Submitting…" : view.image ? "Regenerate" : "Generate"}
              </button>
              <CostTag estimate={estimate} />
            </>
          )}
        </div>
      )}
      {canEdit && !running && !refusal && <BudgetNote reason={gate.reason} />}
      {canEdit && !running && !refusal && showsEstimateError(estimateError) && <p className="muted small estimate-error">Cost unknown: {refusalText(estimateError)}</p>}
      {view.hint && canEdit && <p className="muted small hint">{view.hint}</p>}
      {view.image && <img className="image-preview generated-image" src={view.image.url} alt="Generated image" draggable={false} />}
      <TakeStrip node={node} takes={view.takes} activeTakeId={view.activeTakeId} canEdit={canEdit} />
    </NodeCard>
  );
}

export const ImageGenNode = memo(ImageGenNodeView);
