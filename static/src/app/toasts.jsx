// Transient notices in the corner. One store, one <Toasts/>; a toast may carry an
// action (Undo). A toast with a `key` replaces the one showing under that key, so one
// cause never stacks up contradictory copies.
import { useSyncExternalStore } from "react";

const MAX_TOASTS = 4;
let toasts = [];
let nextId = 1;
const listeners = new Set();

function emit() {
  for (const fn of [...listeners]) fn();
}

/** Take a toast away. */
export function dismiss(id) {
  const before = toasts.length;
  toasts = toasts.filter((t) => t.id !== id);
  if (toasts.length !== before) emit();
}

/**
 * Show `message`; kind is "info", "success" or "error". Options: `action` ({label,
 * run}), `key` (replaces the toast with that key), `timeoutMs`. Returns its id.
 */
export function toast(message, kind = "info", { action = null, key = null, timeoutMs } = {}) {
  const id = nextId++;
  const kept = key ? toasts.filter((t) => t.key !== key) : toasts;
  toasts = [...kept, { id, message, kind, action, key }].slice(-MAX_TOASTS);
  emit();
  const ms = timeoutMs ?? (action ? 8000 : kind === "error" ? 8000 : 3500);
  setTimeout(() => dismiss(id), ms);
  return id;
}

function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The toast area. */
export function Toasts() {
  const list = useSyncExternalStore(subscribe, () => toasts);
  return (
    <div className="toasts" id="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} className={`toast toast-${t.kind}`} role={t.kind === "error" ? "alert" : undefined}>
          <span className="toast-text">{t.message}</span>
          {t.action && (
            <button
              type="button"
              className="btn btn-secondary btn-sm toast-action"
              onClick={() => {
                dismiss(t.id);
                t.action.run();
              }}
            >
              {t.action.label}
            </button>
          )}
          <button type="button" className="icon-btn toast-close" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
