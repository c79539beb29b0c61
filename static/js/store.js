// The canvas's view of one project. The websocket client (/cf-client.js) owns the
// state — snapshot, then events in seq order — and this wraps it for the views: derived
// lookups, a change signal, and the answers to our own REST calls written in ahead of
// their events so the person who acted sees the result at once.
import { emptyState } from "../cf-client.js";

const LIVE = new Set(["pending", "processing"]);

/** Whether a job status means the job can still change. */
export const isLive = (status) => LIVE.has(status);

export class CanvasStore {
  constructor(projectId) {
    this.projectId = projectId;
    /** the client's state object: {seq, project, nodes, connections, jobs, deleted} */
    this.state = emptyState(projectId);
    /** the project as GET /api/projects/{id} answered, until an event updates it */
    this.restProject = null;
    this.listeners = new Set();
  }

  get nodes() {
    return this.state.nodes;
  }

  get connections() {
    return this.state.connections;
  }

  get jobs() {
    return this.state.jobs;
  }

  /** Whether the state reflects the server (a snapshot arrived). */
  get loaded() {
    return this.state.seq !== null;
  }

  get deleted() {
    return this.state.deleted;
  }

  get project() {
    return this.state.project || this.restProject;
  }

  /** Follow the live client's state object for this project. */
  attach(state) {
    this.state = state;
  }

  /** Call `fn(reason)` after every change; returns an unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed(reason) {
    for (const fn of this.listeners) fn(reason);
  }

  // -- the answers to our own REST calls, applied before their events arrive --

  putProjectFromRest(project) {
    this.restProject = project;
    if (this.state.project) this.state.project = project;
    this.changed("rest");
  }

  putNodeFromRest(node) {
    this.state.nodes.set(node.id, node);
    this.changed("rest");
  }

  removeNodeFromRest(nodeId) {
    const { nodes, connections, jobs } = this.state;
    nodes.delete(nodeId);
    for (const [id, c] of connections) {
      if (c.source_id === nodeId || c.target_id === nodeId) connections.delete(id);
    }
    for (const [id, job] of jobs) if (job.node_id === nodeId) jobs.delete(id);
    this.changed("rest");
  }

  putConnectionFromRest(connection) {
    this.state.connections.set(connection.id, connection);
    this.changed("rest");
  }

  removeConnectionFromRest(connectionId) {
    this.state.connections.delete(connectionId);
    this.changed("rest");
  }

  putJobFromRest(job) {
    const known = this.state.jobs.get(job.job_id);
    // a finished job never goes back to live, and progress never moves backwards
    if (known && !isLive(known.status) && isLive(job.status)) return;
    if (known && isLive(job.status) && known.progress > job.progress) job = { ...job, progress: known.progress };
    this.state.jobs.set(job.job_id, job);
    this.changed("rest");
  }

  // -- derived views --

  /** The node's most recent job, or null. */
  latestJob(nodeId) {
    let latest = null;
    for (const job of this.state.jobs.values()) {
      if (job.node_id !== nodeId) continue;
      if (!latest || job.created_at > latest.created_at) latest = job;
    }
    return latest;
  }

  /** Nodes wired into `nodeId`, oldest connection first. */
  inputsOf(nodeId) {
    return [...this.state.connections.values()]
      .filter((c) => c.target_id === nodeId)
      .sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map((c) => this.state.nodes.get(c.source_id))
      .filter(Boolean);
  }
}
