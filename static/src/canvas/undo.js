// Per-user undo and redo, as plain data. Every action of this tab's user is recorded
// as a pair of actions (forward, backward); undo carries out the backward one as
// server changes, redo the forward one, so every tab and collaborator sees them.
// Before an action runs it is planned against the current graph: the parts that
// someone else has changed since (a node moved or edited elsewhere, a node gone) are
// skipped, never overwritten, and the caller says so in a notice.
//
// Actions:
//   {type: "create", nodes: [snapshot], connections: [link]}   nodes and links to (re)make
//   {type: "remove", nodes: [snapshot], connections: [link]}   the same, to take away
//   {type: "move", moves: [{id, from: {x, y}, to: {x, y}}]}
//   {type: "data", id, from: {key: value}, to: {key: value}}
// A snapshot is {id, type, x, y, data}; a link {id, source, target, port}. Creating
// gives new ids: `remap` rewrites every recorded id so older entries follow them.
import { refuseConnection } from "./ports.js";

/** The action that undoes `action`. */
export function inverse(action) {
  switch (action.type) {
    case "create":
      return { ...action, type: "remove" };
    case "remove":
      return { ...action, type: "create" };
    case "move":
      return { type: "move", moves: action.moves.map((m) => ({ id: m.id, from: m.to, to: m.from })) };
    case "data":
      return { type: "data", id: action.id, from: action.to, to: action.from };
    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

/** Node data as compared for conflicts: without the URLs the server signs afresh. */
export function comparableData(data) {
  const out = {};
  for (const key of Object.keys(data || {}).sort()) {
    if (!key.endsWith("_url")) out[key] = data[key];
  }
  return JSON.stringify(out);
}

const near = (a, b) => Math.abs(a - b) < 0.5;
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * What of `action` can run on `graph` ({nodes, connections} Maps of server ids):
 * `{action, skipped}` where `skipped` counts the parts someone else changed since.
 */
export function planAction(action, graph) {
  let skipped = 0;
  switch (action.type) {
    case "remove": {
      const nodes = [];
      for (const snap of action.nodes) {
        const current = graph.nodes.get(snap.id);
        if (!current) continue; // already gone: nothing to do
        if (comparableData(current.data) !== comparableData(snap.data)) skipped += 1;
        else nodes.push(snap);
      }
      const removed = new Set(nodes.map((n) => n.id));
      const kept = new Set(action.nodes.map((n) => n.id).filter((id) => !removed.has(id)));
      const connections = action.connections.filter(
        (c) => graph.connections.has(c.id) && !removed.has(c.source) && !removed.has(c.target) && !kept.has(c.source) && !kept.has(c.target),
      );
      return { action: { type: "remove", nodes, connections }, skipped };
    }
    case "create": {
      const made = new Map(action.nodes.map((n) => [n.id, n]));
      const nodes = new Map([...graph.nodes, ...made]);
      // a link that touches a node being re-created went with that node on the server,
      // even while this tab has not heard of its deletion yet
      const links = [...graph.connections.values()].filter((c) => !made.has(c.source_id) && !made.has(c.target_id));
      const connections = [];
      for (const link of action.connections) {
        const refused = refuseConnection(
          { source: link.source, target: link.target, sourceHandle: "out", targetHandle: link.port },
          { nodes, connections: links },
        );
        if (refused) {
          skipped += 1;
          continue;
        }
        connections.push(link);
        links.push({ id: link.id, source_id: link.source, target_id: link.target, target_port: link.port });
      }
      return { action: { type: "create", nodes: action.nodes, connections }, skipped };
    }
    case "move": {
      const moves = [];
      for (const move of action.moves) {
        const current = graph.nodes.get(move.id);
        if (current && near(current.x, move.from.x) && near(current.y, move.from.y)) moves.push(move);
        else skipped += 1;
      }
      return { action: { type: "move", moves }, skipped };
    }
    case "data": {
      const current = graph.nodes.get(action.id);
      const ok = current && Object.keys(action.from).every((k) => same(current.data?.[k], action.from[k]));
      return ok ? { action, skipped } : { action: { ...action, from: {}, to: {} }, skipped: 1 };
    }
    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

/** Whether a planned action does nothing. */
export function isEmpty(action) {
  switch (action.type) {
    case "create":
    case "remove":
      return action.nodes.length === 0 && action.connections.length === 0;
    case "move":
      return action.moves.length === 0;
    case "data":
      return Object.keys(action.to).length === 0;
    default:
      return true;
  }
}

/** `action` with every id that `ids` (old → new) names replaced. */
export function remapAction(action, ids) {
  const m = (id) => ids.get(id) ?? id;
  switch (action.type) {
    case "create":
    case "remove":
      return {
        ...action,
        nodes: action.nodes.map((n) => ({ ...n, id: m(n.id) })),
        connections: action.connections.map((c) => ({ ...c, id: m(c.id), source: m(c.source), target: m(c.target) })),
      };
    case "move":
      return { ...action, moves: action.moves.map((mv) => ({ ...mv, id: m(mv.id) })) };
    case "data":
      return { ...action, id: m(action.id) };
    default:
      return action;
  }
}

/** Two stacks of {label, forward, backward, key, at}; the newest entry last. */
export class UndoStack {
  constructor({ limit = 100, mergeWindowMs = 2000 } = {}) {
    this.limit = limit;
    this.mergeWindowMs = mergeWindowMs;
    this.done = [];
    this.undone = [];
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  /**
   * Record what the user just did. An entry with the same `key` as the newest one,
   * within the merge window, extends it (typing, nudging with the arrow keys).
   */
  record({ label, forward, backward = inverse(forward), key = null }, now = Date.now()) {
    this.undone = [];
    const top = this.done.at(-1);
    if (key && top && top.key === key && now - top.at < this.mergeWindowMs) {
      top.forward = mergeForward(top.forward, forward);
      top.backward = inverse(top.forward);
      top.at = now;
      return top;
    }
    const entry = { label, forward, backward, key, at: now };
    this.done.push(entry);
    if (this.done.length > this.limit) this.done.shift();
    return entry;
  }

  /** The entry to undo next, taken off the stack. */
  takeUndo() {
    return this.done.pop() || null;
  }

  /** The entry to redo next, taken off the stack. */
  takeRedo() {
    return this.undone.pop() || null;
  }

  /** An undone entry (as it actually ran) goes on the redo stack. */
  pushUndone(entry) {
    this.undone.push({ ...entry, key: null });
  }

  /** A redone entry goes back on the undo stack, leaving the redo stack as it is. */
  pushDone(entry) {
    this.done.push({ ...entry, key: null });
  }

  /** Rewrite ids (old → new) in every entry: a re-created node got a new id. */
  remap(ids) {
    if (!ids.size) return;
    const fix = (e) => ({ ...e, forward: remapAction(e.forward, ids), backward: remapAction(e.backward, ids) });
    this.done = this.done.map(fix);
    this.undone = this.undone.map(fix);
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}

/** Two consecutive forward actions of one kind as one: first `from`, last `to`. */
function mergeForward(first, next) {
  if (first.type === "data" && next.type === "data" && first.id === next.id) {
    return { type: "data", id: first.id, from: { ...next.from, ...first.from }, to: { ...first.to, ...next.to } };
  }
  if (first.type === "move" && next.type === "move") {
    const byId = new Map(first.moves.map((m) => [m.id, { ...m }]));
    for (const m of next.moves) {
      const known = byId.get(m.id);
      if (known) known.to = m.to;
      else byId.set(m.id, { ...m });
    }
    return { type: "move", moves: [...byId.values()] };
  }
  return next;
}
