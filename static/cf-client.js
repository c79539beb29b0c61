// cf-client.js — the canvasflow websocket client (an ES module, no dependencies).
//
// One connection to GET /ws carries any number of project subscriptions. The client
// keeps a local state object per project (seq, nodes, connections, jobs), applies the
// server's snapshot and events to it by the protocol's rules, and calls you back after
// every change (members, takes and — with `presence: true` — who else is here, too).
// It reconnects by itself (exponential backoff with full jitter) and
// resumes each project with `since`, so a reconnect costs a replay of what was missed,
// not a snapshot. The wire protocol is documented in docs/protocol.md ("Websocket").
//
//   import { CanvasflowClient } from "/cf-client.js";
//   const client = new CanvasflowClient({ onStatus: (s) => console.log(s) });
//   const project = client.subscribe(projectId, {
//     onChange: (state, reason) => render(state),   // reason: "snapshot", an event kind, "job.progress", "presence"
//     onError: (error) => console.warn(error.code),  // e.g. project_not_found, forbidden_role
//   }, { presence: true });
//   client.sendPresence(projectId, { cursor: { x: 10, y: 20 } });
//   ...
//   project.unsubscribe();
//   client.close();

/** Close codes after which reconnecting cannot help (the same as common/protocol/mirror.py). */
const FATAL_CLOSE = new Map([
  [4400, "too_many_errors"], // the client keeps sending what the server refuses: a bug to fix
  [4401, "unauthenticated"],
  [4403, "forbidden"],
]);
const LIVE_JOB = new Set(["pending", "processing"]);
/** Error codes that refused one action (a frame) and leave the subscription as it is. */
const ACTION_ERRORS = new Set(["forbidden_role"]);

/** A new, empty project state. */
export function emptyState(projectId) {
  return {
    projectId,
    seq: null, // the seq this state reflects; null until the first snapshot
    project: null, // set by project.updated events
    nodes: new Map(), // node id → node
    connections: new Map(), // connection id → connection
    jobs: new Map(), // job id → JobStatusResponse
    takes: new Map(), // take id → Take (the snapshot's, then each job's outputs)
    members: new Map(), // user id → Member
    presence: new Map(), // user id → who else has the project open (ephemeral)
    deleted: false,
  };
}

/** Replace `state`'s contents with a snapshot frame. */
export function applySnapshot(state, snapshot) {
  state.seq = snapshot.seq;
  state.nodes = new Map(snapshot.nodes.map((n) => [n.id, n]));
  state.connections = new Map(snapshot.connections.map((c) => [c.id, c]));
  state.jobs = new Map(snapshot.jobs.map((j) => [j.job_id, j]));
  state.takes = new Map((snapshot.takes || []).map((t) => [t.id, t]));
  state.members = new Map((snapshot.members || []).map((m) => [m.user_id, m]));
}

/** Apply a presence frame: the whole list (`full`), or the users that changed and left. */
export function applyPresence(state, frame) {
  if (frame.full) state.presence = new Map();
  for (const user of frame.users || []) state.presence.set(user.user_id, user);
  for (const id of frame.left || []) state.presence.delete(id);
}

/** Apply one event's change to `state` (the caller has checked its seq). */
export function applyEvent(state, kind, data) {
  switch (kind) {
    case "project.updated":
      state.project = data.project;
      break;
    case "project.deleted":
      state.deleted = true;
      break;
    case "node.created":
    case "node.updated":
      state.nodes.set(data.node.id, data.node);
      break;
    case "node.deleted":
      state.nodes.delete(data.node_id);
      for (const id of data.connection_ids || []) state.connections.delete(id);
      for (const [id, job] of state.jobs) if (job.node_id === data.node_id) state.jobs.delete(id);
      for (const [id, take] of state.takes) if (take.node_id === data.node_id) state.takes.delete(id);
      break;
    case "connection.created":
      state.connections.set(data.connection.id, data.connection);
      break;
    case "connection.deleted":
      state.connections.delete(data.connection_id);
      break;
    case "take.deleted":
      state.takes.delete(data.take_id);
      state.nodes.set(data.node.id, data.node);
      break;
    case "member.added":
    case "member.updated":
      state.members.set(data.member.user_id, data.member);
      break;
    case "member.removed":
      state.members.delete(data.user_id);
      state.presence.delete(data.user_id);
      break;
    case "project.transferred":
      state.project = data.project;
      state.members.set(data.owner.user_id, data.owner);
      state.members.set(data.previous_owner.user_id, data.previous_owner);
      break;
    default:
      // job.created / started / completed / failed / cancelled: {job, node[, takes]};
      // node.active_take_changed: {node, take_id}
      if (data && data.job) state.jobs.set(data.job.job_id, data.job);
      if (data && data.node) state.nodes.set(data.node.id, data.node);
      if (data && Array.isArray(data.takes)) for (const t of data.takes) state.takes.set(t.id, t);
  }
}

/** Milliseconds to wait before reconnect attempt `attempt` (0-based): full jitter. */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 4000 } = {}, random = Math.random) {
  return Math.round(random() * Math.min(maxMs, initialMs * 2 ** attempt));
}

/** One project followed over the client's connection. */
class ProjectSubscription {
  constructor(client, projectId, callbacks, { presence = false } = {}) {
    this.client = client;
    this.state = emptyState(projectId);
    this.callbacks = callbacks;
    this.presence = presence;
    this.active = true; // false once unsubscribed or ended by the server
    this.pending = false; // a subscribe is out and not answered yet
  }

  /** Stop following the project. */
  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._forget(this);
  }

  /** The subscribe frame for the current state: with `since` once we hold a seq. */
  frame() {
    const frame = { type: "subscribe", project_id: this.state.projectId };
    if (this.state.seq !== null) frame.since = this.state.seq;
    if (this.presence) frame.presence = true;
    return frame;
  }

  handle(message) {
    const state = this.state;
    switch (message.type) {
      case "snapshot":
        applySnapshot(state, message);
        this.pending = false;
        this.changed("snapshot", message);
        break;
      case "subscribed":
        // the server confirmed our `since`: the events after it follow
        this.pending = false;
        if (state.seq !== message.seq) this.resync();
        else this.changed("subscribed", message);
        break;
      case "event":
        if (this.pending || state.seq === null || message.seq <= state.seq) return; // duplicate
        if (message.seq !== state.seq + 1) {
          this.resync(); // a gap: ask for what we missed
          return;
        }
        applyEvent(state, message.kind, message.data);
        state.seq = message.seq;
        this.changed(message.kind, message);
        break;
      case "job.progress": {
        const job = state.jobs.get(message.job_id);
        if (!job || !LIVE_JOB.has(job.status)) return;
        // progress only ever rises; position and ETA take the newest figures
        const changes = {};
        if (message.progress > job.progress) {
          changes.progress = message.progress;
          changes.progress_estimated = message.estimated ?? false;
        }
        if (message.queue_position != null && message.queue_position !== job.queue_position) {
          changes.queue_position = message.queue_position;
        }
        if (message.eta_s != null && message.eta_s !== job.eta_s) changes.eta_s = message.eta_s;
        if (Object.keys(changes).length === 0) return;
        state.jobs.set(message.job_id, { ...job, ...changes });
        this.changed("job.progress", message);
        break;
      }
      case "presence":
        applyPresence(state, message);
        this.changed("presence", message);
        break;
      case "unsubscribed":
        // the project was deleted (or we asked): nothing more will come
        this.end();
        break;
      case "error":
        if (ACTION_ERRORS.has(message.code)) {
          // one action was refused (a viewer's editing marker): the subscription goes on
          if (this.callbacks.onError) this.callbacks.onError(message);
          break;
        }
        this.pending = false;
        // said first, so the end that follows knows why (access_revoked, project_not_found)
        if (this.callbacks.onError) this.callbacks.onError(message);
        if (message.code === "unavailable" || message.code === "rate_limited") {
          this.client._retryLater(this);
        } else {
          this.end();
        }
        break;
    }
  }

  /** Subscribe again from our seq (after a gap or a mismatch). */
  resync() {
    this.pending = true;
    this.client._send(this.frame());
  }

  end() {
    if (!this.active) return;
    this.active = false;
    this.client._forget(this, false);
    this.changed("ended", null);
  }

  changed(reason, message) {
    if (this.callbacks.onChange) this.callbacks.onChange(this.state, reason, message);
  }
}

/** A reconnecting websocket connection to canvasflow, shared by every subscribed project. */
export class CanvasflowClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url] the websocket URL (default: /ws on this page's host)
   * @param {number} [options.initialDelayMs] first reconnect delay cap (default 500)
   * @param {number} [options.maxDelayMs] largest reconnect delay cap (default 4000)
   * @param {number} [options.pingIntervalMs] app-level ping period (default 25000)
   * @param {(status: string, detail?: object) => void} [options.onStatus]
   *   "connecting", "live", "reconnecting", "unauthenticated", "forbidden", "closed"
   * @param {(error: object) => void} [options.onError] error frames about no one project
   * @param {typeof WebSocket} [options.WebSocket] a WebSocket implementation (tests)
   */
  constructor(options = {}) {
    const loc = globalThis.location;
    this.url = options.url || `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
    this.delays = { initialMs: options.initialDelayMs ?? 500, maxMs: options.maxDelayMs ?? 4000 };
    this.pingIntervalMs = options.pingIntervalMs ?? 25000;
    this.onStatus = options.onStatus || (() => {});
    this.onError = options.onError || null;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.subscriptions = new Map(); // project id → ProjectSubscription
    this.ws = null;
    this.attempt = 0;
    this.closed = false;
    this.timer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.lastClose = null; // {code, reason} of the last close, for diagnostics
    this._connect();
  }

  /**
   * Follow a project; returns its subscription ({state, unsubscribe()}). With
   * `{presence: true}` the server also sends who else is here (state.presence).
   */
  subscribe(projectId, callbacks = {}, options = {}) {
    // subscribing again replaces the subscription on the server too: no unsubscribe,
    // whose answer would end the new one
    const existing = this.subscriptions.get(projectId);
    if (existing) existing.active = false;
    const sub = new ProjectSubscription(this, projectId, callbacks, options);
    this.subscriptions.set(projectId, sub);
    sub.pending = true;
    this._send(sub.frame());
    return sub;
  }

  /**
   * Tell the others where this tab is: `{cursor?, selection?, editing?}` (what changed;
   * null clears). Dropped while not connected: presence is ephemeral. Throttle it
   * yourself to at most 20 a second. Returns whether it went out.
   */
  sendPresence(projectId, fields) {
    const sub = this.subscriptions.get(projectId);
    if (!sub || !sub.active || !sub.presence || sub.pending) return false;
    if (!this.ws || this.ws.readyState !== 1) return false;
    this._send({ type: "presence", project_id: projectId, ...fields });
    return true;
  }

  /** Close the connection for good. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.onStatus("closed");
  }

  _connect() {
    if (this.closed) return;
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      this.onStatus("live");
      // resume every project: with `since` where we hold a state, else a snapshot
      for (const sub of this.subscriptions.values()) {
        sub.pending = true;
        this._send(sub.frame());
      }
      this._startPings();
    };
    ws.onmessage = (msg) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      // the server talks to us: the connection works, so the backoff starts over
      this.attempt = 0;
      const sub = frame.project_id && this.subscriptions.get(frame.project_id);
      if (sub && sub.active) {
        sub.handle(frame);
      } else if (frame.type === "error" && !frame.project_id) {
        // not about one project (rate_limited, malformed frame): resend what is unanswered
        if (frame.code === "rate_limited") {
          for (const s of this.subscriptions.values()) if (s.pending) this._retryLater(s);
        }
        if (this.onError) this.onError(frame);
      }
    };
    ws.onclose = (event) => {
      clearInterval(this.pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.lastClose = { code: event.code, reason: event.reason };
      if (this.closed) return;
      const fatal = FATAL_CLOSE.get(event.code);
      if (fatal) {
        this.closed = true;
        this.onStatus(fatal, this.lastClose);
        return;
      }
      // 1001 going away, 4008 slow consumer, 1006 network, ...: come back with since
      const delay = backoffDelay(this.attempt, this.delays);
      this.attempt += 1;
      this.onStatus("reconnecting", { ...this.lastClose, delayMs: delay });
      this.timer = setTimeout(() => this._connect(), delay);
    };
  }

  _startPings() {
    clearInterval(this.pingTimer);
    if (!this.pingIntervalMs) return;
    this.pingTimer = setInterval(() => {
      // nothing heard for two periods: the connection is dead even if the socket does not know
      if (Date.now() - this.lastFrameAt > 2 * this.pingIntervalMs && this.ws) {
        this.ws.close(4000, "no answer");
        return;
      }
      this._send({ type: "ping" });
    }, this.pingIntervalMs);
  }

  _send(frame) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
    // not open: onopen sends every subscription's frame
  }

  _forget(sub, tellServer = true) {
    if (this.subscriptions.get(sub.state.projectId) === sub) {
      this.subscriptions.delete(sub.state.projectId);
    }
    if (tellServer) this._send({ type: "unsubscribe", project_id: sub.state.projectId });
  }

  _retryLater(sub) {
    const delay = backoffDelay(2, this.delays);
    setTimeout(() => {
      if (sub.active && this.subscriptions.get(sub.state.projectId) === sub) {
        sub.pending = true;
        this._send(sub.frame());
      }
    }, delay);
  }
}
