// The canvas's one live store: the server's state of one project, as cf-client.js keeps
// it (snapshot, then events in seq order), under a pending local overlay keyed by
// entity, plus the view state React Flow hands back through change objects
// (selection, measured sizes). React reads it with useSyncExternalStore.
//
// The overlay holds what this tab did and the server has not yet told every tab:
//   - a local edit not sent yet (text being typed, a node being dragged): `local`;
//   - a write in flight: `inflight` > 0, sent when the state was at `sentAtSeq`;
//   - a REST reply not yet followed by its event: `value`.
// An entry is dropped once an event about its entity with a seq past `sentAtSeq`
// arrives and nothing of it is still local or in flight. A REST reply never
// overwrites a newer event: it is taken only if its `version` is greater than the
// server copy's (when entities carry `version`), else only if no event about the
// entity arrived after the write was sent.
import { emptyState } from "../../cf-client.js";

const KINDS = ["node", "connection"];

/** The entity ids an event is about: [[kind, id], ...]. */
export function touchedBy(kind, data) {
  if (!data) return [];
  switch (kind) {
    case "node.created":
    case "node.updated":
      return [["node", data.node.id]];
    case "node.deleted":
      return [["node", data.node_id], ...(data.connection_ids || []).map((id) => ["connection", id])];
    case "connection.created":
      return [["connection", data.connection.id]];
    case "connection.deleted":
      return [["connection", data.connection_id]];
    default:
      return data.node ? [["node", data.node.id]] : [];
  }
}

/** `patch` merged over `base`: x and y replaced, data keys merged. */
export function mergePatch(base, patch) {
  if (!patch) return base;
  if (!base) return patch;
  const out = { ...base, ...patch };
  if (base.data || patch.data) out.data = { ...(base.data || {}), ...(patch.data || {}) };
  return out;
}

export class LiveStore {
  constructor(projectId) {
    this.projectId = projectId;
    this.server = emptyState(projectId);
    this.restProject = null;
    this.overlay = { node: new Map(), connection: new Map() };
    /** entity id → seq of the last event about it */
    this.lastEventSeq = new Map();
    /** the seq of the last snapshot: it speaks for every entity */
    this.snapshotSeq = -1;
    this.selectedNodes = new Set();
    this.selectedEdges = new Set();
    this.measured = new Map();
    /** the signed-in user ({id, email}): their role comes from the members */
    this.me = null;
    /** takes whose delete this tab sent: hidden at once, gone for good with their event */
    this.hiddenTakes = new Set();
    /** takes a take.deleted event removed: a REST page read before it never brings them back */
    this.goneTakes = new Set();
    this.version = 0;
    this.view = null;
    this.listeners = new Set();
    this.getView = this.getView.bind(this);
    this.subscribe = this.subscribe.bind(this);
  }

  // -- subscription (useSyncExternalStore) --

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    this.version += 1;
    this.view = null;
    for (const fn of [...this.listeners]) fn();
  }

  // -- the server's side --

  /** Follow cf-client's state object of this project. */
  attach(state) {
    this.server = state;
    this.changed();
  }

  setProject(project) {
    this.restProject = project;
    this.changed();
  }

  setMe(user) {
    this.me = user;
    this.changed();
  }

  /** The signed-in user's role here: from the members (kept live by member events), else REST. */
  role() {
    const id = this.me?.id;
    const member = id ? this.server.members?.get(id) : null;
    if (member) return member.role;
    return this.server.members?.size && id ? null : this.restProject?.role || null;
  }

  /** Takes read over REST (older pages than the snapshot's): kept beside the server's. */
  putTakes(takes) {
    for (const take of takes) {
      if (!this.goneTakes.has(take.id) && this.server.nodes.has(take.node_id)) this.server.takes.set(take.id, take);
    }
    this.changed();
  }

  hideTake(id, hidden = true) {
    if (hidden) this.hiddenTakes.add(id);
    else this.hiddenTakes.delete(id);
    this.changed();
  }

  /** cf-client applied a snapshot, an event or a tick (`message` is the frame). */
  onServer(reason, message) {
    if (reason === "presence") {
      // who is where: nothing of the graph changed (up to 20 a second per collaborator)
      this.changed();
      return;
    }
    if (reason === "snapshot") {
      this.snapshotSeq = message ? message.seq : this.server.seq;
      for (const kind of KINDS) {
        for (const [id, entry] of this.overlay[kind]) {
          if (!entry.local && entry.inflight === 0 && this.snapshotSeq > entry.sentAtSeq) {
            this.overlay[kind].delete(id);
          }
        }
      }
    } else if (message && message.type === "event") {
      if (message.kind === "take.deleted") this.goneTakes.add(message.data.take_id);
      const gone = message.kind === "node.deleted" || message.kind === "connection.deleted";
      for (const [kind, id] of touchedBy(message.kind, message.data)) {
        this.lastEventSeq.set(id, message.seq);
        // an entity deleted on the server takes this tab's unsent edits of it along
        if (gone) this.overlay[kind].delete(id);
        else this.settleIfDone(kind, id);
      }
    }
    this.pruneView();
    this.changed();
  }

  // -- the local overlay --

  entry(kind, id) {
    let entry = this.overlay[kind].get(id);
    if (!entry) {
      entry = { patch: null, value: null, removed: false, local: false, inflight: 0, sentAtSeq: -1 };
      this.overlay[kind].set(id, entry);
    }
    return entry;
  }

  /** A local change not sent yet (drag, typing): shown at once, kept until sent. */
  edit(kind, id, patch) {
    const entry = this.entry(kind, id);
    entry.patch = mergePatch(entry.patch, patch);
    entry.local = true;
    this.changed();
  }

  /**
   * A write is going out: `{patch}`, `{removed: true}`, or nothing for a create (id
   * null until the reply names it). Returns the token to settle or fail it with.
   */
  send(kind, id, { patch = null, removed = false } = {}) {
    const sentAtSeq = this.server.seq ?? -1;
    if (id !== null) {
      const entry = this.entry(kind, id);
      entry.patch = mergePatch(entry.patch, patch);
      if (removed) entry.removed = true;
      entry.local = false;
      entry.inflight += 1;
      entry.sentAtSeq = sentAtSeq;
      this.changed();
    }
    return { kind, id, sentAtSeq };
  }

  /** The write answered with `reply` (the entity as the server now has it, or null). */
  settle(token, reply = null) {
    const id = token.id ?? reply?.id;
    if (id == null) return;
    const kind = token.kind;
    const entry = token.id == null ? this.entry(kind, id) : this.overlay[kind].get(id);
    if (!entry) return;
    if (token.id != null) entry.inflight = Math.max(0, entry.inflight - 1);
    if (token.id == null) entry.sentAtSeq = Math.max(entry.sentAtSeq, token.sentAtSeq);
    if (reply && this.replyIsNewer(kind, id, reply, token.sentAtSeq)) entry.value = reply;
    this.settleIfDone(kind, id);
    this.changed();
  }

  /** The write failed: what it showed goes away (unless more is local or in flight). */
  fail(token) {
    const entry = token.id != null && this.overlay[token.kind].get(token.id);
    if (!entry) return;
    entry.inflight = Math.max(0, entry.inflight - 1);
    if (entry.inflight === 0 && !entry.local) this.overlay[token.kind].delete(token.id);
    this.changed();
  }

  /**
   * A job as a REST call answered it, ahead of its event: a finished job never goes
   * back to live, and progress never moves backwards.
   */
  putJob(job) {
    const known = this.server.jobs.get(job.job_id);
    const live = (s) => s === "pending" || s === "processing";
    if (known && !live(known.status) && live(job.status)) return;
    if (known && live(job.status) && known.progress > job.progress) {
      job = { ...job, progress: known.progress, progress_estimated: known.progress_estimated ?? job.progress_estimated };
    }
    this.server.jobs.set(job.job_id, job);
    this.changed();
  }

  /** Drop whatever this tab shows of an entity beyond the server's copy. */
  forget(kind, id) {
    if (this.overlay[kind].delete(id)) this.changed();
  }

  replyIsNewer(kind, id, reply, sentAtSeq) {
    const known = this.serverMap(kind).get(id);
    if (known && reply.version != null && known.version != null) return reply.version > known.version;
    const heard = Math.max(this.lastEventSeq.get(id) ?? -1, this.snapshotSeq);
    return !(heard > sentAtSeq);
  }

  settleIfDone(kind, id) {
    const entry = this.overlay[kind].get(id);
    if (!entry || entry.local || entry.inflight > 0) return;
    const known = this.serverMap(kind).get(id);
    const heard = (this.lastEventSeq.get(id) ?? -1) > entry.sentAtSeq;
    const caughtUp =
      entry.value && known && entry.value.version != null && known.version != null
        ? known.version >= entry.value.version
        : heard;
    if (entry.removed ? !known || heard : caughtUp || (!entry.value && !entry.patch)) {
      this.overlay[kind].delete(id);
    }
  }

  serverMap(kind) {
    return kind === "node" ? this.server.nodes : this.server.connections;
  }

  // -- view state through React Flow's change objects --

  /**
   * Apply React Flow node changes: selection, measured size, position (a local edit).
   * Returns the position changes, for the canvas to save the ones that ended.
   */
  applyNodeChanges(changes) {
    const moved = [];
    for (const change of changes) {
      if (change.type === "select") {
        if (change.selected) this.selectedNodes.add(change.id);
        else this.selectedNodes.delete(change.id);
      } else if (change.type === "dimensions" && change.dimensions) {
        const { width, height } = change.dimensions;
        const known = this.measured.get(change.id);
        if (!known || known.width !== width || known.height !== height) this.measured.set(change.id, { width, height });
      } else if (change.type === "position" && change.position) {
        const entry = this.entry("node", change.id);
        entry.patch = mergePatch(entry.patch, { x: round(change.position.x), y: round(change.position.y) });
        entry.local = true;
        moved.push({ id: change.id, x: round(change.position.x), y: round(change.position.y), dragging: !!change.dragging });
      }
    }
    if (changes.length) this.changed();
    return moved;
  }

  /** Apply React Flow edge changes (selection; removal goes through commands). */
  applyEdgeChanges(changes) {
    for (const change of changes) {
      if (change.type !== "select") continue;
      if (change.selected) this.selectedEdges.add(change.id);
      else this.selectedEdges.delete(change.id);
    }
    if (changes.length) this.changed();
  }

  /** Select exactly these nodes and connections. */
  select(nodeIds = [], edgeIds = []) {
    this.selectedNodes = new Set(nodeIds);
    this.selectedEdges = new Set(edgeIds);
    this.changed();
  }

  pruneView() {
    const view = this.merged();
    for (const id of this.selectedNodes) if (!view.nodes.has(id)) this.selectedNodes.delete(id);
    for (const id of this.selectedEdges) if (!view.connections.has(id)) this.selectedEdges.delete(id);
  }

  // -- reads --

  merged() {
    const pick = (kind, serverMap) => {
      const out = new Map();
      const overlay = this.overlay[kind];
      for (const [id, entity] of serverMap) {
        const entry = overlay.get(id);
        if (!entry) out.set(id, entity);
        else if (!entry.removed) out.set(id, mergePatch(entry.value || entity, entry.patch));
      }
      for (const [id, entry] of overlay) {
        if (!serverMap.has(id) && entry.value && !entry.removed && !this.lastEventSeq.has(id)) {
          out.set(id, mergePatch(entry.value, entry.patch));
        }
      }
      return out;
    };
    const nodes = pick("node", this.server.nodes);
    // a node hidden by this tab's delete takes its links with it, as the server's delete
    // does: until the event comes they would still fill ports and block re-creating them
    const connections = pick("connection", this.server.connections);
    for (const [id, c] of connections) {
      if (!nodes.has(c.source_id) || !nodes.has(c.target_id)) connections.delete(id);
    }
    return { nodes, connections };
  }

  /** The state to draw: merged nodes and connections, jobs, project, view state. */
  getView() {
    if (this.view) return this.view;
    const { nodes, connections } = this.merged();
    this.view = {
      version: this.version,
      seq: this.server.seq,
      loaded: this.server.seq !== null,
      deleted: this.server.deleted,
      project: this.server.project || this.restProject,
      nodes,
      connections,
      jobs: this.server.jobs,
      takes: visibleTakes(this.server.takes, this.hiddenTakes),
      members: this.server.members || new Map(),
      // a copy: cf-client updates its maps in place, and views are compared by reference
      presence: new Map(this.server.presence || []),
      me: this.me,
      role: this.role(),
      selectedNodes: this.selectedNodes,
      selectedEdges: this.selectedEdges,
      measured: this.measured,
    };
    return this.view;
  }

  /** Whether the entity has local or unanswered changes. */
  pending(kind, id) {
    const entry = this.overlay[kind].get(id);
    return !!entry && (entry.local || entry.inflight > 0);
  }
}

/** The takes to draw: the server's, less those this tab is deleting. */
function visibleTakes(takes = new Map(), hidden) {
  if (!hidden.size) return takes;
  const out = new Map(takes);
  for (const id of hidden) out.delete(id);
  return out;
}

const round = (value) => Math.round(value * 10) / 10;
