// A prompt node: text a video node generates from. What the user types is shown at
// once (in this node and in the video nodes it feeds) and saved after a pause; an
// unsaved edit is never overwritten by another tab's, and is retried while offline.
// Text is saved against the version it was typed on: when someone else changed the
// same prompt meanwhile, both versions are shown and the user chooses (nothing is lost).
import { memo, useCallback, useEffect, useRef, useState } from "react";
import { keepBoth } from "../canvas/conflict.js";
import { useCommands } from "../canvas/context.js";
import { NodeCard } from "./NodeCard.jsx";

const MAX_CHARS = 4000;
const SAVE_AFTER_MS = 500;
const RETRY_MS = [1000, 2000, 5000];

function PromptNodeView({ data, selected }) {
  const { node, canEdit, presence = [] } = data;
  const commands = useCommands();
  const serverText = node.data?.prompt || "";
  const [text, setText] = useState(serverText);
  const [saveState, setSaveState] = useState("");
  const [conflict, setConflict] = useState(null); // {mine, theirs, version}
  const dirty = useRef(false);
  const saved = useRef(serverText); // the text as last saved: an undo entry's "from"
  const base = useRef(node.version ?? null); // the version `saved` is: what a save is made against
  const conflictRef = useRef(null); // the conflict on show: saving waits for the user's choice
  const timer = useRef(null);
  const failures = useRef(0);
  const latest = useRef(text);
  latest.current = text;

  // another tab's edit (or an undo) arrives: take it unless the user is mid-edit
  useEffect(() => {
    if (!dirty.current && serverText !== latest.current) {
      setText(serverText);
      saved.current = serverText;
    }
    if (!dirty.current) base.current = node.version ?? null;
  }, [serverText, node.version]);

  const flush = useCallback(async () => {
    clearTimeout(timer.current);
    timer.current = null;
    if (!dirty.current || conflictRef.current) return;
    const value = latest.current;
    setSaveState("Saving…");
    try {
      await commands.setData(node.id, { prompt: value }, { from: { prompt: saved.current }, key: `prompt:${node.id}`, label: "Edit prompt", ifVersion: base.current });
      saved.current = value;
      base.current = commands.store.getView().nodes.get(node.id)?.version ?? base.current;
      failures.current = 0;
      if (latest.current === value && timer.current === null) {
        dirty.current = false;
        setSaveState("Saved");
      }
    } catch (err) {
      if (err.code === "edit_conflict") {
        // someone else changed this prompt since we started: show both, let the user choose
        conflictRef.current = { mine: latest.current, theirs: err.conflict.theirs, version: err.conflict.version };
        setConflict(conflictRef.current);
        setSaveState("Not saved: changed elsewhere");
        return;
      }
      // offline or refused: keep the text, say so briefly, and try again
      setSaveState(navigator.onLine ? "Not saved yet: retrying" : "Offline: saves when back");
      const wait = RETRY_MS[Math.min(failures.current, RETRY_MS.length - 1)];
      failures.current += 1;
      timer.current = setTimeout(flush, wait);
    }
  }, [commands, node.id]);

  useEffect(() => commands.registerFlusher(node.id, flush), [commands, node.id, flush]);

  /** Resolve a conflict: save `value` against the version that refused us. */
  const resolve = (value) => {
    const { theirs, version } = conflictRef.current;
    conflictRef.current = null;
    setConflict(null);
    saved.current = theirs;
    base.current = version;
    setText(value);
    latest.current = value;
    if (value === theirs) {
      dirty.current = false;
      commands.store.forget("node", node.id);
      setSaveState("Saved");
      return;
    }
    dirty.current = true;
    commands.store.edit("node", node.id, { data: { prompt: value } });
    flush();
  };
  useEffect(() => () => {
    if (timer.current) flush();
  }, [flush]);

  const onChange = (event) => {
    const value = event.target.value;
    dirty.current = true;
    setText(value);
    setSaveState("Editing…");
    commands.store.edit("node", node.id, { data: { prompt: value } });
    clearTimeout(timer.current);
    timer.current = setTimeout(flush, SAVE_AFTER_MS);
  };

  const inputId = `prompt-${node.id}`;
  const editing = presence.filter((p) => p.editing);
  return (
    <NodeCard node={node} selected={selected} canEdit={canEdit} presence={presence}>
      <label className="field-label" htmlFor={inputId}>
        Prompt text
      </label>
      <textarea
        id={inputId}
        className="prompt-input nodrag nowheel"
        rows={5}
        maxLength={MAX_CHARS}
        placeholder="Describe the shot: subject, motion, light, camera…"
        spellCheck
        value={text}
        readOnly={!canEdit}
        onChange={onChange}
        onFocus={() => canEdit && commands.presence?.editing(node.id)}
        onBlur={() => {
          commands.presence?.editing(null);
          flush();
        }}
      />
      {editing.length > 0 && (
        <p className="editing-marker small" role="status">
          {editing.map((p) => (
            <span key={p.user_id} style={{ color: p.color }}>
              {p.email}
            </span>
          ))}{" "}
          {editing.length === 1 ? "is" : "are"} editing this prompt
        </p>
      )}
      {conflict && (
        <div className="edit-conflict nodrag" role="alert" aria-label="Edit conflict">
          <p className="small">Someone else changed this prompt while you typed. Both versions:</p>
          <div className="conflict-versions">
            <figure>
              <figcaption className="small">Yours</figcaption>
              <blockquote className="conflict-mine">{conflict.mine}</blockquote>
            </figure>
            <figure>
              <figcaption className="small">Theirs (saved)</figcaption>
              <blockquote className="conflict-theirs">{conflict.theirs}</blockquote>
            </figure>
          </div>
          <div className="node-actions">
            <button type="button" className="btn btn-primary btn-sm" onClick={() => resolve(latest.current)}>
              Keep mine
            </button>
            <button type="button" className="btn btn-secondary btn-sm" onClick={() => resolve(keepBoth(latest.current, conflict.theirs))}>
              Keep both
            </button>
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => resolve(conflict.theirs)}>
              Use theirs
            </button>
          </div>
        </div>
      )}
      <div className="node-foot">
        <span className="save-state muted small" aria-live="polite" title={saveState}>
          {saveState}
        </span>
        <span className="muted small counter">
          {text.length} / {MAX_CHARS}
        </span>
      </div>
    </NodeCard>
  );
}

export const PromptNode = memo(PromptNodeView);
