// A prompt node: text a video node generates from. What the user types is shown at
// once (in this node and in the video nodes it feeds) and saved after a pause; an
// unsaved edit is never overwritten by another tab's, and is retried while offline.
import { memo, useCallback, useEffect, useRef, useState } from "react";
import { useCommands } from "../canvas/context.js";
import { NodeCard } from "./NodeCard.jsx";

const MAX_CHARS = 4000;
const SAVE_AFTER_MS = 500;
const RETRY_MS = [1000, 2000, 5000];

function PromptNodeView({ data, selected }) {
  const { node } = data;
  const commands = useCommands();
  const serverText = node.data?.prompt || "";
  const [text, setText] = useState(serverText);
  const [saveState, setSaveState] = useState("");
  const dirty = useRef(false);
  const saved = useRef(serverText); // the text as last saved: an undo entry's "from"
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
  }, [serverText]);

  const flush = useCallback(async () => {
    clearTimeout(timer.current);
    timer.current = null;
    if (!dirty.current) return;
    const value = latest.current;
    setSaveState("Saving…");
    try {
      await commands.setData(node.id, { prompt: value }, { from: { prompt: saved.current }, key: `prompt:${node.id}`, label: "Edit prompt" });
      saved.current = value;
      failures.current = 0;
      if (latest.current === value && timer.current === null) {
        dirty.current = false;
        setSaveState("Saved");
      }
    } catch {
      // offline or refused: keep the text, say so briefly, and try again
      setSaveState(navigator.onLine ? "Not saved yet: retrying" : "Offline: saves when back");
      const wait = RETRY_MS[Math.min(failures.current, RETRY_MS.length - 1)];
      failures.current += 1;
      timer.current = setTimeout(flush, wait);
    }
  }, [commands, node.id]);

  useEffect(() => commands.registerFlusher(node.id, flush), [commands, node.id, flush]);
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
  return (
    <NodeCard node={node} selected={selected}>
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
        onChange={onChange}
        onBlur={flush}
      />
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
