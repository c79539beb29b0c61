// An image-generation node: a prompt in, images out. Generate makes 1–4 images (each a
// take); the active take is what it shows and what video nodes' image ports consume.
import { memo, useState } from "react";
import { useCommands } from "../canvas/context.js";
import { GenerationOptions } from "./GenerationOptions.jsx";
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

  async function generate() {
    setSubmitting(true);
    setRefusal("");
    try {
      await commands.generateImage(node.id);
    } catch (err) {
      setRefusal(err.message);
      commands.notify(err.message, "error");
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
      <div className="status-row" hidden={!running}>
        <div className="progress" role="progressbar" aria-label="Generation progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow={String(view.pct)} hidden={!running}>
          <div className="progress-fill" style={{ width: `${running ? Math.max(view.pct, 2) : 0}%` }} />
        </div>
        <span className="progress-text small">{running ? (status === "pending" ? "Queued…" : `${view.pct}%`) : ""}</span>
      </div>
      {view.errorText && (
        <p className="node-error" role="alert">
          Generation failed: {view.errorText}
        </p>
      )}
      {refusal && !running && (
        <p className="node-error refusal" role="alert">
          Not generated: {refusal}
        </p>
      )}
      {view.createdBy && <p className="muted small created-by">Started by {view.createdBy}</p>}
      {canEdit && (
        <div className="node-actions">
          {running ? (
            <button className="btn btn-secondary btn-sm cancel nodrag" type="button" onClick={() => view.jobId && commands.cancel(view.jobId).catch((e) => commands.notify(e.message, "error"))}>
              Cancel
            </button>
          ) : (
            <button className="btn btn-primary btn-sm generate nodrag" type="button" disabled={submitting || !view.canGenerate} onClick={generate}>
              {submitting ? "Submitting…" : view.image ? "Regenerate" : "Generate"}
            </button>
          )}
        </div>
      )}
      {view.hint && canEdit && <p className="muted small hint">{view.hint}</p>}
      {view.image && <img className="image-preview generated-image" src={view.image.url} alt="Generated image" draggable={false} />}
      <TakeStrip node={node} takes={view.takes} activeTakeId={view.activeTakeId} canEdit={canEdit} />
    </NodeCard>
  );
}

export const ImageGenNode = memo(ImageGenNodeView);
