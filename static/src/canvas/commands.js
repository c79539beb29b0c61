// The one command API of the canvas: everything the user does, from the toolbar, the
// keyboard, a context menu or a node component, goes through here. Each command is a
// server change made through the live store (shown at once, settled by its event) and,
// when it is the user's own edit, recorded for undo.
import { CLIPBOARD_KEY, copyNodes, parseClipboard, placeClip } from "./clipboard.js";
import { create, runAction, write } from "./actions.js";
import { PORTS, refuseConnection } from "./ports.js";
import { UndoStack, inverse, isEmpty, planAction, remapAction } from "./undo.js";
import { freeSpot } from "./placement.js";
import { NODE_SPECS, nodeTitle } from "../nodes/specs.js";
import { videoOptionsBody } from "../nodes/generation.js";
import { newIdempotencyKey, submitOnce } from "../nodes/money.js";
import { imageRequest } from "../nodes/image-gen-view.js";
import { currentInputs, deriveVideo, rememberInputs } from "../nodes/video-view.js";
import { deriveImageGen } from "../nodes/image-gen-view.js";

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Commands for one project. `notify(message, kind, options)` shows a toast; the flow
 * adapter (attachFlow) tells where the view is, for new nodes and pastes.
 */
export function createCommands({ projectId, store, api, notify }) {
  const undo = new UndoStack();
  const ctx = { api, store, projectId };
  const flushers = new Map(); // node id → save its unsent edits now
  const usageWatchers = new Set(); // the header's budget: read again after a submit or a refusal
  const usageChanged = () => usageWatchers.forEach((fn) => fn());
  /** Submit with one Idempotency-Key (a lost answer retried with it); the budget moves either way. */
  const submit = async (call, key) => {
    try {
      return await submitOnce(call, { key: key || newIdempotencyKey() });
    } finally {
      usageChanged();
    }
  };
  let flow = null;

  const view = () => store.getView();
  const graph = () => ({ nodes: view().nodes, connections: view().connections });
  const failed = (what) => (err) => {
    notify(`Could not ${what}: ${err.message}`, "error");
    throw err;
  };
  const record = (entry) => {
    const stored = undo.record(entry);
    store.changed();
    return stored;
  };

  /** The links touching these nodes, as undo.js records them. */
  function linksOf(nodeIds, extraEdgeIds = []) {
    const ids = new Set(nodeIds);
    const g = graph();
    const out = [];
    for (const c of g.connections.values()) {
      if (ids.has(c.source_id) || ids.has(c.target_id) || extraEdgeIds.includes(c.id)) out.push(linkOf(c, g));
    }
    return out;
  }

  function linkOf(c, g = graph()) {
    const target = g.nodes.get(c.target_id);
    const source = g.nodes.get(c.source_id);
    const port = c.target_port || PORTS[target?.type]?.inputs.find((p) => p.kind === PORTS[source?.type]?.outputs[0]?.kind)?.id || null;
    return { id: c.id, source: c.source_id, target: c.target_id, port };
  }

  const snapshotOf = (node) => ({ id: node.id, type: node.type, x: node.x, y: node.y, data: node.data || {} });

  async function runEntryAction(action) {
    const ids = await runAction(action, ctx);
    undo.remap(ids);
    return remapAction(action, ids);
  }

  /** Whether this user may change the project (the server refuses a viewer anyway). */
  const canEdit = () => {
    const role = store.role();
    return role === "owner" || role === "editor";
  };
  const viewerRefusal = () => {
    notify("You are a viewer of this project: you may look, not change.", "error", { key: "viewer" });
  };

  const commands = {
    projectId,
    store,
    notify,
    /** This tab's presence ({cursor, selection, editing}); set by the page (attachPresence). */
    presence: null,
    canEdit,

    attachPresence(presence) {
      commands.presence = presence;
    },
    get canUndo() {
      return undo.canUndo;
    },
    get canRedo() {
      return undo.canRedo;
    },

    /** The flow adapter: {visibleRect(), center()} in flow coordinates. */
    attachFlow(adapter) {
      flow = adapter;
    },

    /** A node component registers how to save its unsent edits (Generate calls it). */
    registerFlusher(nodeId, fn) {
      flushers.set(nodeId, fn);
      return () => flushers.get(nodeId) === fn && flushers.delete(nodeId);
    },

    // -- nodes and connections --

    async addNode(type, at = null) {
      if (!canEdit()) {
        viewerRefusal();
        throw new Error("A viewer adds no nodes.");
      }
      const spec = NODE_SPECS[type];
      const spot = at || freeSpot(type, flow?.visibleRect(), [...view().nodes.values()], view().measured);
      const body = { type, x: Math.round(spot.x), y: Math.round(spot.y), data: spec.defaults() };
      const node = await create(store, "node", () => api.createNode(projectId, body)).catch(failed("add the node"));
      record({ label: `Add ${spec.title.toLowerCase()}`, forward: { type: "create", nodes: [snapshotOf(node)], connections: [] } });
      store.select([node.id]);
      return node;
    },

    /** Delete nodes and connections at once; offers Undo in a toast. */
    async deleteElements(nodeIds, edgeIds = []) {
      if (!canEdit()) return viewerRefusal();
      const g = graph();
      const nodes = nodeIds.map((id) => g.nodes.get(id)).filter(Boolean).map(snapshotOf);
      const connections = linksOf(nodes.map((n) => n.id), edgeIds);
      if (!nodes.length && !connections.length) return;
      const forward = { type: "remove", nodes, connections };
      const what = nodes.length ? plural(nodes.length, "node") : plural(connections.length, "connection");
      const entry = record({ label: `Delete ${what}`, forward });
      try {
        await runAction(forward, ctx);
      } catch (err) {
        notify(`Could not delete: ${err.message}`, "error");
        return;
      }
      notify(`Deleted ${nodes.length === 1 ? nodeTitle(nodes[0]) : what}.`, "info", {
        key: "deleted",
        action: { label: "Undo", run: () => commands.undoIfNewest(entry) },
      });
    },

    deleteSelection() {
      const v = view();
      return commands.deleteElements([...v.selectedNodes], [...v.selectedEdges]);
    },

    /** Nodes moved from `from` to `to` ([{id, from, to}]); `key` merges nudges into one undo. */
    async moveNodes(moves, { key = null } = {}) {
      if (!canEdit()) return viewerRefusal();
      const real = moves.filter((m) => m.from.x !== m.to.x || m.from.y !== m.to.y);
      if (!real.length) return;
      const forward = { type: "move", moves: real };
      record({ label: real.length === 1 ? "Move node" : `Move ${real.length} nodes`, forward, key });
      await runAction(forward, ctx).catch(failed("move"));
    },

    /**
     * An undoable edit of node data; `from` defaults to the values shown now, and
     * `ifVersion` to the version shown now (the one the edit was made against).
     * Throws an EditConflict (conflict.js) when someone else changed the same text.
     */
    async setData(id, to, { from = null, key = null, label = "Edit", ifVersion = null } = {}) {
      const node = view().nodes.get(id);
      if (!node) return;
      const before = from || Object.fromEntries(Object.keys(to).map((k) => [k, node.data?.[k] ?? null]));
      const forward = { type: "data", id, from: before, to };
      try {
        await runAction({ ...forward, ifVersion: ifVersion ?? node.version ?? null }, ctx);
      } catch (err) {
        // keep what the user typed on show: the caller retries
        store.edit("node", id, { data: to });
        throw err;
      }
      record({ label, forward, key });
    },

    /** A data change that is not the user's edit (bookkeeping): not recorded for undo. */
    saveData(id, data) {
      return write(store, "node", id, { patch: { data } }, () => api.updateNode(id, { data }));
    },

    /** Why a connection cannot be made now, or null (React Flow's isValidConnection). */
    refuse(connection) {
      return refuseConnection(connection, graph());
    },

    async connect(connection) {
      if (!canEdit()) return viewerRefusal();
      const refused = commands.refuse(connection);
      if (refused) {
        notify(refused.message, "error", { key: "connect" });
        return null;
      }
      const port = connection.targetHandle;
      const made = await create(store, "connection", () =>
        api.createConnection(projectId, connection.source, connection.target, port),
      ).catch(failed("connect"));
      record({ label: "Connect", forward: { type: "create", nodes: [], connections: [{ id: made.id, source: made.source_id, target: made.target_id, port }] } });
      return made;
    },

    // -- clipboard --

    copySelection() {
      const ids = [...view().selectedNodes];
      if (!ids.length) return null;
      const clip = copyNodes(projectId, ids, graph());
      localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(clip));
      notify(`Copied ${plural(clip.nodes.length, "node")}.`, "info", { key: "clipboard" });
      return clip;
    },

    /** Paste the clipboard with its top-left at `at` (flow coordinates), or beside the originals. */
    async paste(at = null) {
      const clip = parseClipboard(localStorage.getItem(CLIPBOARD_KEY) || "");
      if (!clip) {
        notify("Nothing to paste: select nodes and press Ctrl+C first.", "info", { key: "clipboard" });
        return;
      }
      const place = at || (clip.projectId !== projectId && flow ? flow.visibleRect().topLeftInset : null);
      return commands.pasteClip(clip, place);
    },

    async pasteClip(clip, at) {
      if (!canEdit()) return viewerRefusal();
      const placed = placeClip(clip, at);
      const action = { type: "create", nodes: placed.nodes, connections: placed.connections };
      let made;
      try {
        made = await runEntryAction(action);
      } catch (err) {
        notify(`Could not paste: ${err.message}`, "error");
        return;
      }
      record({ label: `Paste ${plural(made.nodes.length, "node")}`, forward: made });
      store.select(made.nodes.map((n) => n.id));
    },

    duplicateSelection() {
      const ids = [...view().selectedNodes];
      if (!ids.length) return null;
      return commands.pasteClip(copyNodes(projectId, ids, graph()), null);
    },

    // -- undo and redo --

    // undo and redo run one after another: a Ctrl+Shift+Z pressed while an undo is
    // still being carried out redoes it once it is done, rather than finding nothing
    undo() {
      if (!canEdit()) return viewerRefusal();
      return queued(async () => {
        const entry = undo.takeUndo();
        if (!entry) return;
        await replay(entry, entry.backward, "Undid", (ran) => undo.pushUndone({ ...entry, forward: inverse(ran), backward: ran }));
      });
    },

    redo() {
      if (!canEdit()) return viewerRefusal();
      return queued(async () => {
        const entry = undo.takeRedo();
        if (!entry) return;
        await replay(entry, entry.forward, "Redid", (ran) => undo.pushDone({ ...entry, forward: ran, backward: inverse(ran) }));
      });
    },

    /** Undo `entry` if nothing newer was done since (the Undo button of a toast). */
    undoIfNewest(entry) {
      if (undo.done.at(-1) === entry) return commands.undo();
      notify("Undo that from the toolbar (Ctrl+Z): newer changes came after it.", "info");
      return null;
    },

    // -- media and generation --

    async uploadImage(nodeId, file) {
      const answer = await api.uploadImage(projectId, nodeId, file);
      if (answer?.node) store.settle(store.send("node", nodeId), answer.node);
      return answer;
    },

    /** An image file dropped on the canvas: a new image node there, holding it. */
    async dropImage(file, at) {
      const node = await commands.addNode("image", at);
      try {
        await commands.uploadImage(node.id, file);
      } catch (err) {
        notify(`Upload failed: ${err.message}`, "error");
      }
    },

    /** Call `fn` when this tab's spending may have moved (a submit, a refusal); returns the unwatch. */
    watchUsage(fn) {
      usageWatchers.add(fn);
      return () => usageWatchers.delete(fn);
    },

    /** The body generate-video sends for this node now (its inputs come from its ports). */
    videoBody(nodeId) {
      const node = view().nodes.get(nodeId);
      if (!node) return null;
      // the settings as the node shows them (made to fit what the model can do)
      const derived = deriveVideo(node, graph(), view().jobs);
      return { node_id: nodeId, ...derived.settings, ...videoOptionsBody(derived.options) };
    },

    /** The body generate-image sends for this node now. */
    imageBody(nodeId) {
      const node = view().nodes.get(nodeId);
      if (!node) return null;
      return imageRequest(nodeId, deriveImageGen(node, graph(), view().jobs));
    },

    /** What Generate would cost: `{cost, currency, budget_remaining}` (same body, nothing saved). */
    async estimate(nodeId) {
      const node = view().nodes.get(nodeId);
      if (!node) return null;
      return node.type === "image_gen" ? api.estimateImage(commands.imageBody(nodeId)) : api.estimateVideo(commands.videoBody(nodeId));
    },

    /** `{idempotencyKey}`: one key per Generate click; a lost answer is retried with it. */
    async generate(nodeId, { idempotencyKey } = {}) {
      const node = view().nodes.get(nodeId);
      if (!node) return null;
      const inputs = currentInputs(nodeId, graph());
      if (!inputs.promptNode) throw new Error("Connect a prompt node first.");
      // save the prompt as shown, so every tab and a reload agree with what was generated
      await flushers.get(inputs.promptNode.id)?.();
      // every input (the prompt just saved, frames, references, a clip to extend) comes
      // from the node's ports, so each take records where its inputs came from
      const body = commands.videoBody(nodeId);
      const settings = deriveVideo(node, graph(), view().jobs).settings;
      const job = await submit((key) => api.generateVideo(body, key), idempotencyKey);
      store.putJob(job);
      // what this take is made from, so the node can tell when its inputs change
      commands.saveData(nodeId, { inputs_by_job: rememberInputs(node.data, job.job_id, inputs, settings) }).catch(() => {});
      return job;
    },

    async generateImage(nodeId, { idempotencyKey } = {}) {
      const node = view().nodes.get(nodeId);
      if (!node) return null;
      const derived = deriveImageGen(node, graph(), view().jobs);
      if (!derived.promptNode) throw new Error("Connect a prompt node first.");
      // the prompt as shown is saved first: the server reads it from the prompt port
      await flushers.get(derived.promptNode.id)?.();
      const body = imageRequest(nodeId, derived);
      const job = await submit((key) => api.generateImage(body, key), idempotencyKey);
      store.putJob(job);
      return job;
    },

    /** Every take of a node (the snapshot holds the newest 8): read page by page. */
    async loadTakes(nodeId) {
      let before = null;
      do {
        const page = await api.listTakes(nodeId, before);
        store.putTakes(page.takes);
        before = page.next_before;
      } while (before);
    },

    /** Make a take the node's active one: what it shows and feeds downstream. */
    pickTake(nodeId, takeId) {
      return write(store, "node", nodeId, { patch: { active_take_id: takeId } }, () => api.setActiveTake(nodeId, takeId)).catch(failed("choose that take"));
    },

    /** Delete a take and its media: hidden here at once, gone everywhere with its event. */
    async deleteTake(nodeId, takeId) {
      store.hideTake(takeId);
      try {
        await api.deleteTake(takeId);
      } catch (err) {
        if (err.code === "take_not_found") return;
        store.hideTake(takeId, false);
        notify(`Could not delete the take: ${err.message}`, "error");
        throw err;
      }
    },

    async cancel(jobId) {
      const job = await api.cancelJob(jobId);
      store.putJob(job);
      return job;
    },
  };

  let history = Promise.resolve();
  function queued(fn) {
    const next = history.then(fn);
    history = next.catch(() => {});
    return next;
  }

  async function replay(entry, action, verb, done) {
    const { action: runnable, skipped } = planAction(action, graph());
    const label = entry.label.toLowerCase();
    if (isEmpty(runnable)) {
      notify(`Skipped ${label}: someone else changed it since.`, "info", { key: "undo" });
      store.changed();
      return;
    }
    try {
      const ran = await runEntryAction(runnable);
      done(ran);
      const more = skipped ? ` (${plural(skipped, "part")} someone else changed since left as is)` : "";
      notify(`${verb} ${label}${more}.`, "info", { key: "undo" });
    } catch (err) {
      notify(`Could not ${verb === "Undid" ? "undo" : "redo"} ${label}: ${err.message}`, "error");
    }
    store.changed();
  }

  return commands;
}
