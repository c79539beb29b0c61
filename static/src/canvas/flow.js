// The live store's view as React Flow nodes and edges. Objects are reused while their
// inputs are unchanged, so React Flow re-renders only the nodes that changed.
import { markersByNode, othersHere } from "./presence.js";
import { targetPortOf } from "./ports.js";
import { isLive, latestJob } from "../nodes/video-view.js";
import { nodeTitle } from "../nodes/specs.js";

const NO_MARKERS = [];
const sameMarkers = (a, b) => a === b || JSON.stringify(a) === JSON.stringify(b);

/** Whether two plain objects hold the same values, one level deep. */
export function shallowEqual(a, b) {
  if (a === b) return true;
  if (!a || !b) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k] || (typeof a[k] === "object" && JSON.stringify(a[k]) === JSON.stringify(b[k])));
}

/** A converter with its own cache: view → {nodes, edges}. `derivers` from the registry. */
export function createFlowMapper(derivers = {}) {
  const nodeCache = new Map();
  const edgeCache = new Map();
  return function toFlow(view) {
    const graph = { nodes: view.nodes, connections: view.connections };
    const extra = { takes: view.takes || new Map() };
    // a viewer (or a tab that does not know its role yet) gets no edit controls
    const canEdit = view.role === "owner" || view.role === "editor";
    const markers = markersByNode(othersHere(view.presence || new Map(), view.me?.id));
    const nodes = [];
    for (const node of view.nodes.values()) {
      const derive = derivers[node.type];
      const derived = derive ? derive(node, graph, view.jobs, extra) : null;
      const selected = view.selectedNodes.has(node.id);
      const measured = view.measured.get(node.id);
      const known = nodeCache.get(node.id);
      const presence = markers.get(node.id) || NO_MARKERS;
      const same = known && known.node === node && known.canEdit === canEdit && shallowEqual(known.derived, derived) && sameMarkers(known.presence, presence);
      if (same && known.selected === selected && known.measured === measured) {
        nodes.push(known.flow);
        continue;
      }
      const data = same ? known.flow.data : { node, view: derived, canEdit, presence };
      const remote = presence.find((p) => p.selected || p.editing);
      const flow = {
        id: node.id,
        type: node.type,
        position: { x: node.x, y: node.y },
        data,
        selected,
        measured,
        ariaLabel: nodeTitle(node),
        draggable: canEdit,
        connectable: canEdit,
        deletable: canEdit,
        ...(remote ? { className: "remote-selected", style: { "--remote-color": remote.color } } : {}),
      };
      nodeCache.set(node.id, { node, selected, measured, derived, canEdit, presence, flow });
      nodes.push(flow);
    }
    for (const id of nodeCache.keys()) if (!view.nodes.has(id)) nodeCache.delete(id);
    const edges = [];
    for (const c of view.connections.values()) {
      const port = targetPortOf(c, view.nodes);
      const running = isLive(latestJob(c.target_id, view.jobs)?.status);
      const selected = view.selectedEdges.has(c.id);
      const known = edgeCache.get(c.id);
      if (known && known.c === c && known.port === port && known.running === running && known.selected === selected) {
        edges.push(known.flow);
        continue;
      }
      const from = view.nodes.get(c.source_id);
      const to = view.nodes.get(c.target_id);
      const flow = {
        id: c.id,
        type: "connection",
        className: `edge${running ? " edge-running" : ""}`,
        source: c.source_id,
        target: c.target_id,
        sourceHandle: "out",
        targetHandle: port,
        selected,
        data: { running },
        ariaLabel: `Connection from ${from ? nodeTitle(from) : "node"} to ${to ? nodeTitle(to) : "node"}. Press Delete to remove it.`,
        domAttributes: { "data-connection-id": c.id },
      };
      edgeCache.set(c.id, { c, port, running, selected, flow });
      edges.push(flow);
    }
    for (const id of edgeCache.keys()) if (!view.connections.has(id)) edgeCache.delete(id);
    return { nodes, edges };
  };
}
