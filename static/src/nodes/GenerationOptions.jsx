// The controls every generating node shares: how many variants (1–4, each a take) and
// the seed, plus — for video — audio, prompt enhancement and person generation. Values
// live in the node's data (undoable edits); the server refuses what the model cannot
// do with a 422 whose message the node shows.
import { useEffect, useState } from "react";
import { PERSON_GENERATION, PERSON_LABELS, VARIANT_COUNTS, parseSeed } from "./generation.js";

export function GenerationOptions({ nodeId, options, video, onChange, disabled }) {
  const sid = (name) => `${name}-${nodeId}`;
  const [seedText, setSeedText] = useState(options.seed == null ? "" : String(options.seed));
  const [seedError, setSeedError] = useState("");
  useEffect(() => setSeedText(options.seed == null ? "" : String(options.seed)), [options.seed]);
  const saveSeed = () => {
    const seed = parseSeed(seedText);
    if (seed === undefined) {
      setSeedError("A seed is a whole number from 0 to 4294967295.");
      return;
    }
    setSeedError("");
    if (seed !== options.seed) onChange({ seed });
  };
  return (
    <div className="gen-options">
      <div className="setting">
        <label htmlFor={sid("variants")}>Variants</label>
        <select id={sid("variants")} className="nodrag" value={String(options.variants)} disabled={disabled} onChange={(e) => onChange({ variants: Number(e.target.value) })}>
          {VARIANT_COUNTS.map((n) => (
            <option key={n} value={String(n)}>
              {n}
            </option>
          ))}
        </select>
      </div>
      <div className="setting">
        <label htmlFor={sid("seed")}>Seed</label>
        <input
          id={sid("seed")}
          className="nodrag seed-input"
          inputMode="numeric"
          placeholder="random"
          value={seedText}
          disabled={disabled}
          aria-invalid={seedError ? "true" : "false"}
          onChange={(e) => setSeedText(e.target.value)}
          onBlur={saveSeed}
          onKeyDown={(e) => e.key === "Enter" && e.currentTarget.blur()}
        />
      </div>
      {video && (
        <details className="more-options">
          <summary className="small">More options</summary>
          <div className="setting">
            <label htmlFor={sid("person_generation")}>People</label>
            <select id={sid("person_generation")} className="nodrag" value={options.person_generation} disabled={disabled} onChange={(e) => onChange({ person_generation: e.target.value })}>
              {PERSON_GENERATION.map((v) => (
                <option key={v} value={v}>
                  {PERSON_LABELS[v]}
                </option>
              ))}
            </select>
          </div>
          <label className="check nodrag">
            <input type="checkbox" checked={options.generate_audio} disabled={disabled} onChange={(e) => onChange({ generate_audio: e.target.checked })} /> Audio
          </label>
          <label className="check nodrag">
            <input type="checkbox" checked={options.enhance_prompt === true} disabled={disabled} onChange={(e) => onChange({ enhance_prompt: e.target.checked })} /> Enhance prompt
          </label>
        </details>
      )}
      {seedError && (
        <p className="node-error small" role="alert">
          {seedError}
        </p>
      )}
    </div>
  );
}
