// Presence, this tab's side (docs/protocol.md, "Presence"): what this tab tells the
// others (cursor, selection, editing marker), throttled to at most 20 frames a second
// as the server coalesces, and what the canvas draws of the others. Pure: the clock and
// the timer are injected, so the throttle is unit-tested.

/** The server flushes presence every 50 ms: sending more often than that is wasted. */
export const PRESENCE_INTERVAL_MS = 50;

/**
 * Collects presence changes and sends them at most once per `intervalMs`, merged: the
 * first change goes out at once, later ones within the interval wait for its end and go
 * as one frame. `resend()` sends the whole known state again (after a resubscribe the
 * server knows nothing of this tab).
 */
export class PresenceThrottle {
  constructor(send, { intervalMs = PRESENCE_INTERVAL_MS, now = () => Date.now(), setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id) } = {}) {
    this.send = send;
    this.intervalMs = intervalMs;
    this.now = now;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.state = {}; // everything this tab has said, as the server should hold it
    this.pending = null; // what changed since the last frame
    this.lastSentAt = -Infinity;
    this.timer = null;
  }

  /** A change: `{cursor}`, `{selection}` or `{editing}` (null clears). */
  update(fields) {
    let changed = false;
    for (const [key, value] of Object.entries(fields)) {
      if (JSON.stringify(this.state[key] ?? null) === JSON.stringify(value ?? null) && !(this.pending && key in this.pending)) continue;
      this.state[key] = value;
      this.pending = { ...(this.pending || {}), [key]: value };
      changed = true;
    }
    if (changed) this.schedule();
  }

  schedule() {
    if (this.timer !== null) return;
    const wait = this.lastSentAt + this.intervalMs - this.now();
    if (wait <= 0) this.flush();
    else this.timer = this.setTimer(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    if (!this.pending) return;
    const frame = this.pending;
    this.pending = null;
    // not sent (not connected yet): kept in `state`, resent after the subscribe
    if (this.send(frame) !== false) this.lastSentAt = this.now();
  }

  /** Drop a member without telling anyone (the server already cleared it: a demotion's editing marker). */
  forget(key) {
    this.state[key] = null;
    if (this.pending && key in this.pending) {
      delete this.pending[key];
      if (!Object.keys(this.pending).length) this.pending = null;
    }
  }

  /** Send everything again (a new subscription starts with nothing of ours). */
  resend() {
    const known = Object.fromEntries(Object.entries(this.state).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length)));
    if (!Object.keys(known).length) return;
    this.pending = { ...known, ...(this.pending || {}) };
    this.schedule();
  }

  stop() {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.pending = null;
  }
}

/** Everyone here but this user, sorted by email (stable avatars). */
export function othersHere(presence, meId) {
  return [...presence.values()].filter((u) => u.user_id !== meId).sort((a, b) => a.email.localeCompare(b.email));
}

/**
 * Per node id, the collaborators on it: `[{user_id, email, color, selected, editing}]`
 * (those who selected it, or are editing it).
 */
export function markersByNode(others) {
  const out = new Map();
  const add = (nodeId, user, how) => {
    if (!nodeId) return;
    let list = out.get(nodeId);
    if (!list) out.set(nodeId, (list = []));
    let entry = list.find((e) => e.user_id === user.user_id);
    if (!entry) list.push((entry = { user_id: user.user_id, email: user.email, color: user.color, selected: false, editing: false }));
    entry[how] = true;
  };
  for (const user of others) {
    for (const id of user.selection || []) add(id, user, "selected");
    add(user.editing, user, "editing");
  }
  return out;
}

/** Up to two letters for an avatar from an email: "ben.li@x" → "BL". */
export function initials(email = "") {
  const name = email.split("@")[0] || "?";
  const parts = name.split(/[._+-]+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts[1]?.[0] || "")).toUpperCase();
}

/** Black or white, whichever reads better on the colour `hex` (#rrggbb). */
export function textOn(hex = "#888888") {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return "#000000";
  const lin = (v) => {
    const c = parseInt(v, 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * lin(m[1]) + 0.7152 * lin(m[2]) + 0.0722 * lin(m[3]);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}
