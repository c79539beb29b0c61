// A video node: settings, Generate/Cancel, live progress, and the clip with what it was
// made from. Everything it shows comes from `data.view` (video-view.js); every action
// goes through the command API.
import { memo, useEffect, useRef, useState } from "react";
import { useCommands } from "../canvas/context.js";
import { GenerationOptions } from "./GenerationOptions.jsx";
import { BudgetNote, CostTag, JobStatusLines } from "./JobControls.jsx";
import { generateState, newIdempotencyKey, refusalText, showsEstimateError } from "./money.js";
import { useEstimate } from "./useEstimate.js";
import { fitSettings } from "./generation.js";
import { NodeCard } from "./NodeCard.jsx";
import { TakeStrip } from "./TakeStrip.jsx";
import { ASPECT_RATIOS, RESOLUTIONS, describeSettings } from "./video-view.js";

const STATUS_LABELS = { idle: "Idle", pending: "Pending", processing: "Processing", completed: "Completed", failed: "Failed", cancelled: "Cancelled" };

function Setting({ id, name, label, value, options, format, onChange }) {
  return (
    <div className="setting">
      <label htmlFor={id}>{label}</label>
      <select id={id} name={name} className="nodrag" value={String(value)} onChange={(e) => onChange(name, e.target.value)}>
        {options.map((o) => (
          <option key={o} value={String(o)}>
            {format ? format(o) : String(o)}
          </option>
        ))}
      </select>
    </div>
  );
}

function Clip({ shown, running }) {
  const [media, setMedia] = useState(null);
  const ref = useRef(null);
  const [src, setSrc] = useState(shown.url);
  const keyRef = useRef(shown.key);
  // a re-signed URL for the same clip must not reload it
  useEffect(() => {
    if (keyRef.current !== shown.key) {
      keyRef.current = shown.key;
      setSrc(shown.url);
      setMedia(null);
    }
  }, [shown.key, shown.url]);
  const label = describeSettings(shown.made) || (media ? `${media.w}×${media.h} · ${Math.round(media.d)} s` : "Loading…");
  const notice = running
    ? `Showing the previous video (${label}) while the new one renders.`
    : shown.settingsDiffer
      ? `Made with ${label}; the settings have changed since.`
      : "";
  return (
    <>
      {notice && <p className="clip-notice small">{notice}</p>}
      {shown.stale && <p className="clip-notice clip-stale small">Inputs changed since this video was made: regenerate to use them.</p>}
      <video
        ref={ref}
        className={`video-preview nodrag${running ? " is-previous" : ""}`}
        src={src}
        controls
        preload="metadata"
        playsInline
        aria-label="Generated video"
        onLoadedMetadata={(e) => setMedia({ w: e.currentTarget.videoWidth, h: e.currentTarget.videoHeight, d: e.currentTarget.duration })}
        onError={(e) => {
          // an expired signature: switch to the freshest URL the server sent
          if (shown.url && e.currentTarget.src !== shown.url) setSrc(shown.url);
        }}
      />
      <div className="video-foot">
        <a className="open-link small nodrag" href={src} target="_blank" rel="noopener" aria-label="Open in new tab" title="Open in new tab">
          Open ↗
        </a>
        <a className="btn btn-ghost btn-sm nodrag download" href={src} download="canvasflow-video.mp4" aria-label="Download video">
          Download
        </a>
        <span className="video-meta muted small">{label}</span>
      </div>
    </>
  );
}

function VideoNodeView({ data, selected }) {
  const { node, view, canEdit, presence } = data;
  const commands = useCommands();
  const [submitting, setSubmitting] = useState(false);
  const [refusal, setRefusal] = useState("");
  const [cancelling, setCancelling] = useState(false);
  const moveFocus = useRef(null); // "cancel" after Generate, "generate" after Cancel
  const generateRef = useRef(null);
  const cancelRef = useRef(null);
  const sid = (name) => `${name}-${node.id}`;

  // the button pressed goes away: the focus goes to the one that replaces it
  useEffect(() => {
    if (moveFocus.current === "cancel" && view.running && cancelRef.current) {
      cancelRef.current.focus();
      moveFocus.current = null;
    } else if (moveFocus.current === "generate" && !view.running && generateRef.current) {
      generateRef.current.focus();
      moveFocus.current = null;
    }
  }, [view.running]);

  const change = (name, value) => {
    // a choice that rules out the duration shown (1080p: 8 s only) brings the one that fits
    const next = fitSettings({ ...view.settings, [name]: name === "duration" ? Number(value) : value }, view.inputs);
    const to = Object.fromEntries(Object.entries(next).filter(([k, v]) => k === name || v !== view.settings[k]));
    commands.setData(node.id, to, { label: "Change video settings" }).catch(() => {});
  };
  const changeOptions = (to) => commands.setData(node.id, to, { label: "Change generation options" }).catch(() => {});

  // the cost of the next Generate, asked again whenever what it would send changes
  const { inputs: now } = view;
  const estimateKey = JSON.stringify([view.settings, view.options, !!now.prompt, now.imageKey, now.lastFrame, now.references, now.extend, view.status, refusal]);
  const { estimate, error: estimateError } = useEstimate(commands, node.id, estimateKey, canEdit && view.canGenerate);
  const gate = generateState({ canGenerate: view.canGenerate, submitting, estimate });

  async function generate() {
    setSubmitting(true);
    setRefusal("");
    moveFocus.current = "cancel";
    try {
      // one key per click: a retry of this click cannot make a second job
      await commands.generate(node.id, { idempotencyKey: newIdempotencyKey() });
    } catch (err) {
      moveFocus.current = null;
      setRefusal(refusalText(err));
      commands.notify?.(refusalText(err), "error");
    } finally {
      setSubmitting(false);
    }
  }

  async function cancel() {
    if (!view.jobId) return;
    setCancelling(true);
    moveFocus.current = "generate";
    try {
      await commands.cancel(view.jobId);
    } catch (err) {
      commands.notify?.(err.message, "error");
    } finally {
      setCancelling(false);
    }
  }

  const { inputs, status, running, settings } = view;
  const promptValue = inputs.promptNode
    ? { text: inputs.prompt || "Connected prompt is empty", missing: !inputs.prompt }
    : { text: "Connect a prompt node", missing: true };
  const imageValue = inputs.imageNode
    ? { text: inputs.imageKey ? "Connected image" : "Connected, no image yet", missing: false }
    : { text: "Optional", missing: true };
  const optional = (on, text) => (on ? { text, missing: false } : { text: "—", missing: true });
  const { constraints } = view;
  const badge = (
    <span className="badge" data-status={status}>
      {STATUS_LABELS[status] || status}
    </span>
  );
  return (
    <NodeCard
      node={node}
      selected={selected}
      badge={badge}
      status={status}
      canEdit={canEdit}
      presence={presence}
      inputs={{
        prompt: promptValue,
        first_frame: imageValue,
        last_frame: optional(inputs.lastFrame, "Connected: morphs into it"),
        references: optional(inputs.references, `${inputs.references} image${inputs.references === 1 ? "" : "s"}`),
        extend: optional(inputs.extend, "Continues that clip"),
      }}
    >
      {inputs.extraPrompts > 0 && <p className="clip-notice small">More than one prompt is connected: the first is used.</p>}
      {canEdit ? (
        <>
          <div className="settings">
            <Setting id={sid("resolution")} name="resolution" label="Resolution" value={settings.resolution} options={constraints.resolutions} onChange={change} />
            <Setting id={sid("duration")} name="duration" label="Duration" value={settings.duration} options={constraints.durations} format={(d) => `${d} s`} onChange={change} />
            <Setting id={sid("aspect_ratio")} name="aspect_ratio" label="Aspect" value={settings.aspect_ratio} options={ASPECT_RATIOS} onChange={change} />
          </div>
          {constraints.reason && <p className="muted small constraint-note">{constraints.reason}</p>}
          <GenerationOptions nodeId={node.id} options={view.options} video onChange={changeOptions} disabled={running} />
        </>
      ) : (
        <p className="muted small settings-readonly">{describeSettings(settings)} · {view.options.variants} variant{view.options.variants === 1 ? "" : "s"}</p>
      )}
      <JobStatusLines view={view} refusal={running ? null : refusal} />
      <div className="node-actions" hidden={!canEdit}>
        {!canEdit ? null : running ? (
          <button ref={cancelRef} className="btn btn-secondary btn-sm cancel nodrag" type="button" disabled={cancelling} onClick={cancel}>
            Cancel
          </button>
        ) : (
          <>
            <button ref={generateRef} className="btn btn-primary btn-sm generate nodrag" type="button" disabled={gate.disabled} onClick={generate}>
              {submitting ? "Submitting…" : view.jobId || view.shown ? "Regenerate" : "Generate"}
            </button>
            <CostTag estimate={estimate} />
          </>
        )}
      </div>
      {canEdit && !running && !refusal && <BudgetNote reason={gate.reason} />}
      {canEdit && !running && !refusal && showsEstimateError(estimateError) && <p className="muted small estimate-error">Cost unknown: {refusalText(estimateError)}</p>}
      {view.hint && canEdit && <p className="muted small hint">{view.hint}</p>}
      {view.shown && <Clip shown={view.shown} running={running} />}
      <TakeStrip node={node} takes={view.takes} activeTakeId={view.activeTakeId} canEdit={canEdit} />
    </NodeCard>
  );
}

export const VideoNode = memo(VideoNodeView);
