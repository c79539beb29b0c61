// The canvas of one project: nodes on a pannable, zoomable plane, connections drawn
// between their handles, and the live link that keeps it equal to the server's state.
import { api } from "./api.js";
import { confirmDialog } from "./dialog.js";
import { h, mount } from "./dom.js";
import { openLive } from "./live.js";
import { NODE_TYPES, createNodeView, nodeLabel } from "./node-views.js";
import { CanvasStore, isLive } from "./store.js";
import { toast } from "./toast.js";

/** Distance from a node's top edge to the centre of its handles, in world px. */
const HANDLE_Y = 22;
const MIN_ZOOM = 0.25;
const MAX_ZOOM = 2;
/** Pointer travel (screen px) before a press becomes a drag. */
const DRAG_THRESHOLD = 4;
const TEXT_FIELDS = "input, textarea, select, [contenteditable]";
const INTERACTIVE = "input, textarea, select, button, a, label, video, [role=button]";

/** Open the canvas of `projectId` in `root`; returns `{dispose}`. */
export function openCanvas(root, topCenter, app, projectId) {
  return new CanvasView(root, topCenter, app, projectId);
}

class CanvasView {
  constructor(root, topCenter, app, projectId) {
    this.app = app;
    this.projectId = projectId;
    this.store = new CanvasStore(projectId);
    this.views = new Map(); // node id → view
    this.edges = new Map(); // connection id → {group, path, hit}
    this.drafts = new Map(); // node id → {x, y} while dragged or saving
    this.selection = null; // {kind: "node" | "edge", id}
    this.connecting = null; // {sourceId, armed, point}
    this.gesture = null; // the pointer gesture in progress
    this.view = this.loadView();
    this.renderQueued = false;
    this.disposers = [];

    this.buildDom(root, topCenter);
    this.disposers.push(this.store.subscribe((reason) => this.onStoreChange(reason)));
    this.listen(window, "pointermove", (e) => this.onPointerMove(e));
    this.listen(window, "pointerup", (e) => this.onPointerUp(e));
    this.listen(window, "pointercancel", (e) => this.onPointerUp(e, true));
    this.listen(document, "keydown", (e) => this.onKeyDown(e));
    this.listen(this.viewport, "pointerdown", (e) => this.onPointerDown(e));
    this.listen(this.viewport, "wheel", (e) => this.onWheel(e), { passive: false });
    this.applyView();
    this.loadProject();
    this.live = openLive(projectId, this.store, {
      onStatus: (status) => this.showLinkStatus(status),
      onEnded: (reason) => this.ended(reason),
    });
  }

  listen(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this.disposers.push(() => target.removeEventListener(type, fn, options));
  }

  dispose() {
    for (const view of this.views.values()) view.dispose();
    this.live.close();
    for (const fn of this.disposers) fn();
    this.disposed = true;
  }

  // -- DOM --

  buildDom(root, topCenter) {
    this.nameInput = h("input", {
      id: "project-name",
      class: "project-name-input",
      maxLength: 200,
      value: "",
      autocomplete: "off",
      onchange: () => this.rename(),
      onkeydown: (e) => {
        if (e.key === "Enter") e.target.blur();
      },
    });
    this.linkStatus = h(
      "span",
      { class: "link-status", id: "link-status", dataset: { state: "connecting" }, role: "status" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "link-text" }, "Connecting…"),
    );
    mount(
      topCenter,
      h("a", { class: "back-link", href: "#/", "aria-label": "All projects" }, "← Projects"),
      h("label", { for: "project-name", class: "sr-only" }, "Project name"),
      this.nameInput,
      this.linkStatus,
    );

    const addButton = (type) =>
      h(
        "button",
        {
          class: `tool tool-add tool-${type}`,
          type: "button",
          id: `add-${type}`,
          "aria-label": `Add ${type} node`,
          title: `Add ${type} node`,
          onclick: () => this.addNode(type),
        },
        h("span", { class: "tool-plus", "aria-hidden": "true" }, "+"),
        h("span", { class: "tool-label" }, NODE_TYPES[type].title),
      );
    this.zoomLabel = h("span", { class: "zoom-label", "aria-live": "polite" }, "100%");
    const tool = (id, label, text, fn) =>
      h("button", { class: "tool", type: "button", id, "aria-label": label, title: label, onclick: fn }, text);
    this.toolbar = h(
      "div",
      { class: "toolbar", role: "toolbar", "aria-label": "Canvas tools" },
      h("div", { class: "tool-group" }, addButton("prompt"), addButton("image"), addButton("video")),
      h(
        "div",
        { class: "tool-group" },
        tool("zoom-out", "Zoom out", "−", () => this.zoomBy(1 / 1.2)),
        this.zoomLabel,
        tool("zoom-in", "Zoom in", "+", () => this.zoomBy(1.2)),
        tool("zoom-fit", "Fit all nodes in view", "Fit", () => this.fitView()),
      ),
    );

    this.edgeLayer = h("svg:svg", { class: "edges", "aria-hidden": "false" });
    this.tempEdge = h("svg:path", { class: "edge-temp", hidden: true });
    this.edgeLayer.append(this.tempEdge);
    this.nodeLayer = h("div", { class: "node-layer" });
    this.edgeDelete = h(
      "button",
      {
        class: "edge-delete",
        type: "button",
        id: "delete-connection",
        "aria-label": "Delete selected connection",
        title: "Delete connection (Delete key)",
        hidden: true,
        onclick: () => this.deleteSelection(),
      },
      "×",
    );
    this.world = h("div", { class: "world" }, this.edgeLayer, this.nodeLayer, this.edgeDelete);
    this.emptyHint = h(
      "div",
      { class: "empty-hint", hidden: true },
      h("h2", {}, "An empty canvas"),
      h(
        "p",
        { class: "muted" },
        "Add a prompt, an image and a video node, then drag from an output handle ",
        h("span", { class: "handle-sample handle-sample-out", "aria-hidden": "true" }),
        " to a video node's input ",
        h("span", { class: "handle-sample", "aria-hidden": "true" }),
        ".",
      ),
    );
    this.loading = h("div", { class: "loading", role: "status" }, "Loading canvas…");
    this.connectHint = h("div", { class: "connect-hint", role: "status", hidden: true });
    this.viewport = h(
      "div",
      {
        class: "viewport",
        id: "viewport",
        tabindex: "0",
        "aria-label": "Canvas. Drag the background to pan, scroll to zoom, arrow keys pan, + and − zoom.",
      },
      this.world,
    );
    mount(
      root,
      h(
        "section",
        { class: "canvas-page" },
        this.toolbar,
        this.viewport,
        this.emptyHint,
        this.loading,
        this.connectHint,
        h("p", { class: "canvas-help muted small" }, "Drag background to pan · scroll to zoom · Delete removes the selection"),
      ),
    );
  }

  async loadProject() {
    try {
      this.store.putProjectFromRest(await api.getProject(this.projectId));
      this.showProjectName();
    } catch (err) {
      if (err.status === 404 || err.status === 422) {
        toast("That project does not exist (any more).", "error");
        this.app.navigate("#/");
      } else if (err.status !== 401) {
        toast(err.message, "error");
      }
    }
  }

  showProjectName() {
    const project = this.store.project;
    if (!project || document.activeElement === this.nameInput) return;
    this.nameInput.value = project.name;
    document.title = `${project.name} · canvasflow`;
  }

  async rename() {
    const name = this.nameInput.value.trim();
    if (!name || name === this.store.project?.name) {
      this.showProjectName();
      return;
    }
    try {
      this.store.putProjectFromRest(await api.renameProject(this.projectId, name));
      this.showProjectName();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  showLinkStatus(status) {
    const labels = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
    this.linkStatus.dataset.state = status;
    this.linkStatus.querySelector(".link-text").textContent = labels[status] || status;
    this.linkStatus.title =
      status === "live" ? "Receiving changes live" : status === "offline" ? "No connection to the server" : "Connecting to the server";
  }

  // -- store → DOM --

  onStoreChange(reason) {
    if (this.store.deleted) {
      this.ended("deleted");
      return;
    }
    if (reason === "project.updated") this.showProjectName();
    this.scheduleRender();
  }

  /** The project can no longer be shown here: deleted, gone, or the session ended. */
  ended(reason) {
    if (this.leaving || this.disposed) return;
    this.leaving = true;
    if (reason === "unauthenticated") {
      this.app.sessionEnded();
      return;
    }
    toast(reason === "deleted" ? "This project was deleted." : "That project does not exist (any more).", "error");
    this.app.navigate("#/");
  }

  scheduleRender() {
    if (this.renderQueued || this.disposed) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      if (!this.disposed) this.render();
    });
  }

  render() {
    const { store } = this;
    for (const node of store.nodes.values()) {
      let view = this.views.get(node.id);
      if (!view) {
        view = createNodeView(this, node);
        this.views.set(node.id, view);
        this.nodeLayer.append(view.el);
      }
      view.update(node);
      this.place(view, node);
    }
    for (const [id, view] of this.views) {
      if (!store.nodes.has(id)) {
        view.dispose();
        this.views.delete(id);
        this.drafts.delete(id);
        if (this.selection?.id === id) this.selection = null;
      }
    }
    if (this.selection?.kind === "edge" && !store.connections.has(this.selection.id)) this.selection = null;
    this.renderEdges();
    this.renderSelection();
    this.loading.hidden = store.loaded;
    this.emptyHint.hidden = !store.loaded || store.nodes.size > 0;
    this.viewport.dataset.nodes = String(store.nodes.size);
  }

  /** Where `nodeId` is drawn: its draft while dragged, else the store's position. */
  position(nodeId) {
    const draft = this.drafts.get(nodeId);
    if (draft) return draft;
    const node = this.store.nodes.get(nodeId);
    return node ? { x: node.x, y: node.y } : null;
  }

  place(view) {
    const { x, y } = this.position(view.id);
    view.el.style.transform = `translate(${x}px, ${y}px)`;
  }

  anchor(nodeId, side) {
    const pos = this.position(nodeId);
    const view = this.views.get(nodeId);
    if (!pos || !view) return null;
    const width = view.el.offsetWidth || 260;
    return { x: side === "out" ? pos.x + width : pos.x, y: pos.y + HANDLE_Y };
  }

  renderEdges() {
    const seen = new Set();
    for (const c of this.store.connections.values()) {
      const from = this.anchor(c.source_id, "out");
      const to = this.anchor(c.target_id, "in");
      if (!from || !to) continue;
      seen.add(c.id);
      let edge = this.edges.get(c.id);
      if (!edge) edge = this.createEdge(c);
      const d = curve(from, to);
      edge.path.setAttribute("d", d);
      edge.hit.setAttribute("d", d);
      edge.mid = { x: (from.x + to.x) / 2, y: (from.y + to.y) / 2 };
      const running = isLive(this.store.latestJob(c.target_id)?.status);
      edge.group.classList.toggle("edge-running", running);
    }
    for (const [id, edge] of this.edges) {
      if (!seen.has(id)) {
        edge.group.remove();
        this.edges.delete(id);
      }
    }
    if (this.connecting?.point) {
      const from = this.anchor(this.connecting.sourceId, "out");
      if (from) {
        this.tempEdge.setAttribute("d", curve(from, this.connecting.point));
        this.tempEdge.removeAttribute("hidden");
      }
    } else {
      this.tempEdge.setAttribute("hidden", "");
    }
  }

  createEdge(c) {
    const source = this.store.nodes.get(c.source_id);
    const target = this.store.nodes.get(c.target_id);
    const label = `Connection from ${source ? nodeLabel(source) : "node"} to ${target ? nodeLabel(target) : "node"}`;
    const path = h("svg:path", { class: "edge-line" });
    const hit = h("svg:path", {
      class: "edge-hit",
      tabindex: "0",
      role: "button",
      "aria-label": `${label}. Press Delete to remove it.`,
    });
    const group = h("svg:g", { class: "edge", "data-connection-id": c.id }, path, hit);
    hit.addEventListener("focus", () => this.select({ kind: "edge", id: c.id }));
    hit.addEventListener("pointerdown", (event) => {
      event.stopPropagation();
      this.select({ kind: "edge", id: c.id });
    });
    this.edgeLayer.insertBefore(group, this.tempEdge);
    const edge = { group, path, hit, mid: { x: 0, y: 0 } };
    this.edges.set(c.id, edge);
    return edge;
  }

  select(selection) {
    this.selection = selection;
    this.renderSelection();
  }

  renderSelection() {
    const sel = this.selection;
    for (const [id, view] of this.views) {
      view.el.classList.toggle("selected", sel?.kind === "node" && sel.id === id);
    }
    for (const [id, edge] of this.edges) {
      edge.group.classList.toggle("selected", sel?.kind === "edge" && sel.id === id);
    }
    const edge = sel?.kind === "edge" ? this.edges.get(sel.id) : null;
    this.edgeDelete.hidden = !edge;
    if (edge) this.edgeDelete.style.transform = `translate(${edge.mid.x}px, ${edge.mid.y}px) translate(-50%, -50%)`;
  }

  // -- pan and zoom --

  loadView() {
    try {
      const saved = JSON.parse(localStorage.getItem(`cf-view-${this.projectId}`));
      if (saved && Number.isFinite(saved.x) && Number.isFinite(saved.y) && Number.isFinite(saved.k)) return saved;
    } catch {
      /* a corrupt entry: start from the default view */
    }
    return { x: 40, y: 40, k: 1 };
  }

  saveView() {
    localStorage.setItem(`cf-view-${this.projectId}`, JSON.stringify(this.view));
  }

  applyView() {
    const { x, y, k } = this.view;
    this.world.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
    this.viewport.style.setProperty("--grid-size", `${24 * k}px`);
    this.viewport.style.setProperty("--grid-x", `${x}px`);
    this.viewport.style.setProperty("--grid-y", `${y}px`);
    this.zoomLabel.textContent = `${Math.round(k * 100)}%`;
  }

  /** The world point under a client (screen) point. */
  toWorld(clientX, clientY) {
    const rect = this.viewport.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  zoomAt(factor, clientX, clientY) {
    const k = clamp(this.view.k * factor, MIN_ZOOM, MAX_ZOOM);
    const rect = this.viewport.getBoundingClientRect();
    const px = clientX - rect.left;
    const py = clientY - rect.top;
    this.view.x = px - ((px - this.view.x) * k) / this.view.k;
    this.view.y = py - ((py - this.view.y) * k) / this.view.k;
    this.view.k = k;
    this.applyView();
    this.saveView();
  }

  zoomBy(factor) {
    const rect = this.viewport.getBoundingClientRect();
    this.zoomAt(factor, rect.left + rect.width / 2, rect.top + rect.height / 2);
  }

  fitView() {
    const views = [...this.views.values()];
    if (!views.length) {
      this.view = { x: 40, y: 40, k: 1 };
    } else {
      let minX = Infinity;
      let minY = Infinity;
      let maxX = -Infinity;
      let maxY = -Infinity;
      for (const view of views) {
        const { x, y } = this.position(view.id);
        minX = Math.min(minX, x);
        minY = Math.min(minY, y);
        maxX = Math.max(maxX, x + view.el.offsetWidth);
        maxY = Math.max(maxY, y + view.el.offsetHeight);
      }
      const rect = this.viewport.getBoundingClientRect();
      const pad = 48;
      const k = clamp(
        Math.min((rect.width - pad * 2) / (maxX - minX), (rect.height - pad * 2) / (maxY - minY)),
        MIN_ZOOM,
        1,
      );
      this.view = {
        k,
        x: (rect.width - (maxX - minX) * k) / 2 - minX * k,
        y: (rect.height - (maxY - minY) * k) / 2 - minY * k,
      };
    }
    this.applyView();
    this.saveView();
  }

  onWheel(event) {
    if (event.target.closest(TEXT_FIELDS)) return;
    event.preventDefault();
    const speed = event.ctrlKey ? 0.01 : 0.0015;
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    this.zoomAt(Math.exp(-delta * speed), event.clientX, event.clientY);
  }

  // -- pointer gestures: pan, drag a node, draw a connection --

  onPointerDown(event) {
    if (event.button !== 0 && event.button !== 1) return;
    const nodeEl = event.target.closest(".node");
    if (this.connecting?.armed && !event.target.closest(".handle")) {
      // a click on a node completes an armed connection; anywhere else cancels it
      if (nodeEl && nodeEl.dataset.nodeId !== this.connecting.sourceId) {
        event.preventDefault();
        this.completeConnect(nodeEl.dataset.nodeId);
        return;
      }
      this.cancelConnect();
    }
    if (nodeEl) {
      const id = nodeEl.dataset.nodeId;
      if (this.selection?.id !== id) this.select({ kind: "node", id });
      if (event.button !== 0 || event.target.closest(INTERACTIVE)) return;
      const start = this.position(id);
      this.gesture = { kind: "node", id, pointerId: event.pointerId, sx: event.clientX, sy: event.clientY, start, moved: false };
      return;
    }
    if (event.target.closest(".edge-hit, .edge-delete")) return;
    event.preventDefault();
    this.viewport.focus({ preventScroll: true });
    this.gesture = {
      kind: "pan",
      pointerId: event.pointerId,
      sx: event.clientX,
      sy: event.clientY,
      start: { x: this.view.x, y: this.view.y },
      moved: false,
    };
  }

  onPointerMove(event) {
    const g = this.gesture;
    if (this.connecting && (!g || g.kind === "connect")) {
      this.connecting.point = this.toWorld(event.clientX, event.clientY);
      this.highlightDropTarget(event);
      this.renderEdges();
    }
    if (!g || g.pointerId !== event.pointerId) return;
    const dx = event.clientX - g.sx;
    const dy = event.clientY - g.sy;
    if (!g.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    if (!g.moved) {
      g.moved = true;
      document.body.classList.add(g.kind === "pan" ? "is-panning" : "is-dragging");
      if (g.kind === "connect") this.connecting = { sourceId: g.id, armed: false, point: null };
    }
    if (g.kind === "pan") {
      this.view.x = g.start.x + dx;
      this.view.y = g.start.y + dy;
      this.applyView();
    } else if (g.kind === "node") {
      this.drafts.set(g.id, { x: round(g.start.x + dx / this.view.k), y: round(g.start.y + dy / this.view.k) });
      const view = this.views.get(g.id);
      if (view) this.place(view);
      this.renderEdges();
      this.renderSelection();
    } else if (g.kind === "connect") {
      this.connecting.point = this.toWorld(event.clientX, event.clientY);
      this.highlightDropTarget(event);
      this.renderEdges();
    }
  }

  onPointerUp(event, cancelled = false) {
    const g = this.gesture;
    if (!g || g.pointerId !== event.pointerId) return;
    this.gesture = null;
    document.body.classList.remove("is-panning", "is-dragging");
    if (!g.moved) {
      if (g.kind === "pan") this.select(null);
      return;
    }
    if (g.kind === "pan") {
      this.saveView();
    } else if (g.kind === "node") {
      this.saveNodePosition(g.id);
    } else if (g.kind === "connect") {
      this.suppressArmClick = true;
      setTimeout(() => (this.suppressArmClick = false), 0);
      const target = cancelled ? null : this.dropTargetAt(event.clientX, event.clientY);
      this.cancelConnect();
      if (target) this.connect(g.id, target);
    }
  }

  async saveNodePosition(id) {
    const draft = this.drafts.get(id);
    if (!draft) return;
    try {
      const node = await api.updateNode(id, { x: draft.x, y: draft.y });
      if (this.drafts.get(id) === draft) this.drafts.delete(id);
      this.store.putNodeFromRest(node);
    } catch (err) {
      if (this.drafts.get(id) === draft) this.drafts.delete(id);
      if (err.code !== "node_not_found") toast(`Could not move the node: ${err.message}`, "error");
      this.scheduleRender();
    }
  }

  /** Pointer down on an output handle: a drag from here draws a connection. */
  beginConnect(event, sourceId) {
    if (event.button !== 0) return;
    event.stopPropagation();
    event.preventDefault();
    this.select({ kind: "node", id: sourceId });
    this.gesture = { kind: "connect", id: sourceId, pointerId: event.pointerId, sx: event.clientX, sy: event.clientY, moved: false };
  }

  /** A click (or Enter) on an output handle: the next input clicked gets connected. */
  armConnect(event, sourceId) {
    if (this.suppressArmClick) return;
    if (this.connecting?.armed && this.connecting.sourceId === sourceId) {
      this.cancelConnect();
      return;
    }
    this.connecting = { sourceId, armed: true, point: null };
    document.body.classList.add("connect-armed");
    this.connectHint.textContent = "Now choose a video node's input to connect to. Esc cancels.";
    this.connectHint.hidden = false;
    this.renderEdges();
  }

  /** A click on an input handle (or on a node while armed): finish the connection. */
  completeConnect(targetId) {
    if (!this.connecting) return;
    const { sourceId } = this.connecting;
    this.cancelConnect();
    if (sourceId !== targetId) this.connect(sourceId, targetId);
  }

  cancelConnect() {
    this.connecting = null;
    document.body.classList.remove("connect-armed");
    this.connectHint.hidden = true;
    for (const el of this.nodeLayer.querySelectorAll(".drop-candidate")) el.classList.remove("drop-candidate");
    this.renderEdges();
  }

  dropTargetAt(clientX, clientY) {
    const el = document.elementFromPoint(clientX, clientY);
    const nodeEl = el?.closest(".node");
    const id = nodeEl?.dataset.nodeId;
    return id && id !== this.connecting?.sourceId ? id : null;
  }

  highlightDropTarget(event) {
    const id = this.dropTargetAt(event.clientX, event.clientY);
    for (const [nodeId, view] of this.views) view.el.classList.toggle("drop-candidate", nodeId === id);
  }

  async connect(sourceId, targetId) {
    for (const c of this.store.connections.values()) {
      if (c.source_id === sourceId && c.target_id === targetId) {
        toast("These nodes are already connected.");
        return;
      }
    }
    try {
      const connection = await api.createConnection(this.projectId, sourceId, targetId);
      this.store.putConnectionFromRest(connection);
    } catch (err) {
      toast(`Could not connect: ${err.message}`, "error");
    }
  }

  // -- keyboard --

  onKeyDown(event) {
    if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
    const inField = event.target.closest?.(TEXT_FIELDS);
    if (event.key === "Escape") {
      if (this.connecting) this.cancelConnect();
      else if (!inField) this.select(null);
      return;
    }
    if (inField) return;
    // Delete acts on the selection, but not while a button or link of a node has the focus
    const onControl = event.target.closest?.("button, a[href], video");
    if ((event.key === "Delete" || event.key === "Backspace") && this.selection && !onControl) {
      event.preventDefault();
      this.deleteSelection();
      return;
    }
    if (event.target !== this.viewport) return;
    const step = event.shiftKey ? 200 : 60;
    const pans = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (pans[event.key]) {
      event.preventDefault();
      this.view.x += pans[event.key][0];
      this.view.y += pans[event.key][1];
      this.applyView();
      this.saveView();
    } else if (event.key === "+" || event.key === "=") {
      this.zoomBy(1.2);
    } else if (event.key === "-") {
      this.zoomBy(1 / 1.2);
    } else if (event.key === "0") {
      this.fitView();
    }
  }

  deleteSelection() {
    const sel = this.selection;
    if (!sel) return;
    if (sel.kind === "edge") this.deleteConnection(sel.id);
    else this.deleteNode(sel.id);
  }

  // -- actions the node views call --

  notify(message, kind) {
    toast(message, kind);
  }

  inputsOf(nodeId) {
    return this.store.inputsOf(nodeId);
  }

  /** The text of a prompt node as its editor shows it, saved or not. */
  promptText(nodeId) {
    const view = this.views.get(nodeId);
    if (view && typeof view.text === "function") return view.text();
    return this.store.nodes.get(nodeId)?.data?.prompt || "";
  }

  promptEdited() {
    this.scheduleRender();
  }

  async addNode(type) {
    const { x, y } = this.freeSpot(type);
    const data = type === "video" ? { resolution: "720p", duration: 8, aspect_ratio: "16:9" } : type === "prompt" ? { prompt: "" } : {};
    try {
      const node = await api.createNode(this.projectId, { type, x, y, data });
      this.store.putNodeFromRest(node);
      this.select({ kind: "node", id: node.id });
      requestAnimationFrame(() => {
        const view = this.views.get(node.id);
        const focusable = view?.el.querySelector("textarea") || view?.el;
        focusable?.focus({ preventScroll: true });
      });
    } catch (err) {
      toast(`Could not add the node: ${err.message}`, "error");
    }
  }

  /** A free place in view for a new node: sources fill the left column, videos the next. */
  freeSpot(type) {
    const rect = this.viewport.getBoundingClientRect();
    const topLeft = this.toWorld(rect.left, rect.top);
    const visibleW = rect.width / this.view.k;
    const visibleH = rect.height / this.view.k;
    const left = round(topLeft.x + Math.min(120, visibleW * 0.08));
    const top = round(topLeft.y + Math.min(96, visibleH * 0.12));
    const size = type === "video" ? { w: 300, h: 420 } : { w: 260, h: 240 };
    const gap = 24;
    const rects = [...this.views.values()].map((view) => {
      const p = this.position(view.id);
      return { x: p.x, y: p.y, w: view.el.offsetWidth, h: view.el.offsetHeight };
    });
    const free = (x, y) =>
      rects.every((r) => x + size.w + gap <= r.x || r.x + r.w + gap <= x || y + size.h + gap <= r.y || r.y + r.h + gap <= y);
    const column = 340;
    const fits = (c) => c === 0 || left + c * column + size.w <= topLeft.x + visibleW;
    const columns = (type === "video" ? [1, 3, 2, 0] : [0, 2, 1, 3]).filter(fits);
    for (const c of columns) {
      for (let y = top; y < top + Math.max(visibleH, 800); y += 40) {
        if (free(left + c * column, y)) return { x: left + c * column, y };
      }
    }
    return { x: left + 24 * (rects.length % 10), y: top + 24 * (rects.length % 10) };
  }

  async deleteNode(nodeId) {
    const node = this.store.nodes.get(nodeId);
    if (!node) return;
    const job = this.store.latestJob(nodeId);
    if (node.data?.video_key || isLive(job?.status)) {
      const ok = await confirmDialog({
        title: "Delete this video node?",
        message: isLive(job?.status)
          ? "Its generation is still running and will be stopped."
          : "Its generated video goes with it.",
        confirmLabel: "Delete node",
      });
      if (!ok) return;
    }
    try {
      await api.deleteNode(nodeId);
      this.store.removeNodeFromRest(nodeId);
    } catch (err) {
      if (err.code === "node_not_found") this.store.removeNodeFromRest(nodeId);
      else toast(`Could not delete the node: ${err.message}`, "error");
    }
    this.viewport.focus({ preventScroll: true });
  }

  async deleteConnection(connectionId) {
    try {
      await api.deleteConnection(connectionId);
      this.store.removeConnectionFromRest(connectionId);
    } catch (err) {
      if (err.code === "connection_not_found") this.store.removeConnectionFromRest(connectionId);
      else toast(`Could not delete the connection: ${err.message}`, "error");
    }
    this.select(null);
    this.viewport.focus({ preventScroll: true });
  }

  async patchNodeData(nodeId, data) {
    const node = await api.updateNode(nodeId, { data });
    this.store.putNodeFromRest(node);
    return node;
  }

  async uploadImage(nodeId, file) {
    const answer = await api.uploadImage(this.projectId, nodeId, file);
    if (answer && answer.node) this.store.putNodeFromRest(answer.node);
    return answer;
  }

  async generateVideo(nodeId, settings) {
    const inputs = this.store.inputsOf(nodeId);
    const prompt = inputs.find((n) => n.type === "prompt");
    const image = inputs.find((n) => n.type === "image");
    if (!prompt) throw new Error("Connect a prompt node first.");
    // save the prompt as shown, so every tab and a reload agree with what was generated
    const promptView = this.views.get(prompt.id);
    if (promptView?.save?.pending()) promptView.save.flush();
    const body = { node_id: nodeId, prompt: this.promptText(prompt.id).trim(), ...settings };
    if (image?.data?.image_key) body.image_url = image.data.image_key;
    const job = await api.generateVideo(body);
    this.store.putJobFromRest(job);
    return job;
  }

  async cancelJob(jobId) {
    const job = await api.cancelJob(jobId);
    this.store.putJobFromRest(job);
    return job;
  }
}

function curve(from, to) {
  const dx = Math.max(40, Math.abs(to.x - from.x) / 2);
  return `M ${from.x} ${from.y} C ${from.x + dx} ${from.y}, ${to.x - dx} ${to.y}, ${to.x} ${to.y}`;
}

const clamp = (value, min, max) => Math.min(max, Math.max(min, value));
const round = (value) => Math.round(value * 10) / 10;
