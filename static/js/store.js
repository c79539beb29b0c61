// The canvas's view of one project: nodes, connections and jobs, kept current from
// the websocket (snapshot, then events in seq order) and from the answers to our own
// REST calls. Views read it and re-render when it says it changed.

const LIVE = new Set(["pending", "processing"]);

/** Whether a job status means the job can still change. */
export const isLive = (status) => LIVE.has(status);

export class CanvasStore {
  constructor(projectId) {
    this.projectId = projectId;
    this.project = null;
    this.seq = 0;
    this.nodes = new Map();
    this.connections = new Map();
    /** job_id → JobStatusResponse */
    this.jobs = new Map();
    this.listeners = new Set();
    this.loaded = false;
    this.deleted = false;
  }

  /** Call `fn(reason)` after every change; returns an unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed(reason) {
    for (const fn of this.listeners) fn(reason);
  }

  /** Replace everything with a snapshot `{seq, nodes, connections, jobs}`. */
  applySnapshot(snapshot) {
    this.seq = snapshot.seq ?? this.seq;
    this.nodes = new Map((snapshot.nodes || []).map((n) => [n.id, n]));
    this.connections = new Map((snapshot.connections || []).map((c) => [c.id, c]));
    // a snapshot may list only live jobs: keep what we know of finished ones
    const jobs = new Map();
    for (const job of snapshot.jobs || []) jobs.set(job.job_id, job);
    for (const [id, job] of this.jobs) {
      if (!jobs.has(id) && this.nodes.has(job.node_id) && !isLive(job.status)) jobs.set(id, job);
    }
    this.jobs = jobs;
    this.loaded = true;
    this.changed("snapshot");
  }

  /** Apply one seq'd event `{seq, kind, data}`. */
  applyEvent(event) {
    const { kind, data } = event;
    if (typeof event.seq === "number") this.seq = Math.max(this.seq, event.seq);
    switch (kind) {
      case "project.updated":
        if (data.project) this.project = data.project;
        break;
      case "project.deleted":
        this.deleted = true;
        break;
      case "node.created":
      case "node.updated":
        if (data.node) this.nodes.set(data.node.id, data.node);
        break;
      case "node.deleted":
        this.dropNode(data.node_id, data.connection_ids);
        break;
      case "connection.created":
        if (data.connection) this.connections.set(data.connection.id, data.connection);
        break;
      case "connection.deleted":
        this.connections.delete(data.connection_id);
        break;
      default:
        if (kind.startsWith("job.")) {
          if (data.job) this.putJob(data.job);
          if (data.node) this.nodes.set(data.node.id, data.node);
        }
    }
    this.changed(kind);
  }

  /** An ephemeral `job.progress` tick. */
  applyProgress(jobId, progress) {
    const job = this.jobs.get(jobId);
    if (!job || !isLive(job.status)) return;
    if (progress <= job.progress) return;
    this.jobs.set(jobId, { ...job, progress, status: job.status === "pending" ? "processing" : job.status });
    this.changed("job.progress");
  }

  putJob(job) {
    const known = this.jobs.get(job.job_id);
    // a finished job never goes back to live, and progress never moves backwards
    if (known && !isLive(known.status) && isLive(job.status)) return;
    if (known && isLive(job.status) && known.progress > job.progress) {
      job = { ...job, progress: known.progress };
    }
    this.jobs.set(job.job_id, job);
  }

  dropNode(nodeId, connectionIds) {
    this.nodes.delete(nodeId);
    for (const id of connectionIds || []) this.connections.delete(id);
    for (const [id, c] of this.connections) {
      if (c.source_id === nodeId || c.target_id === nodeId) this.connections.delete(id);
    }
    for (const [id, job] of this.jobs) if (job.node_id === nodeId) this.jobs.delete(id);
  }

  // -- the answers to our own REST calls, applied before their events arrive --

  /** A node as a REST call answered it. */
  putNodeFromRest(node) {
    this.nodes.set(node.id, node);
    this.changed("rest");
  }

  removeNodeFromRest(nodeId) {
    this.dropNode(nodeId);
    this.changed("rest");
  }

  putConnectionFromRest(connection) {
    this.connections.set(connection.id, connection);
    this.changed("rest");
  }

  removeConnectionFromRest(connectionId) {
    this.connections.delete(connectionId);
    this.changed("rest");
  }

  putJobFromRest(job) {
    this.putJob(job);
    this.changed("rest");
  }

  // -- derived views --

  /** The node's most recent job, or null. */
  latestJob(nodeId) {
    let latest = null;
    for (const job of this.jobs.values()) {
      if (job.node_id !== nodeId) continue;
      if (!latest || job.created_at > latest.created_at) latest = job;
    }
    return latest;
  }

  /** Nodes wired into `nodeId`, oldest connection first. */
  inputsOf(nodeId) {
    return [...this.connections.values()]
      .filter((c) => c.target_id === nodeId)
      .sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map((c) => this.nodes.get(c.source_id))
      .filter(Boolean);
  }
}
