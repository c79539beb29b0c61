// Copy and paste of nodes, as plain data: a copied group is its nodes (type, place,
// data with media keys) and the connections among them. It travels between tabs and
// projects of this browser through localStorage; the server re-attaches the media
// (POST /api/projects/{id}/paste copies what the user may read).
import { targetPortOf } from "./ports.js";

export const CLIPBOARD_KEY = "cf-clipboard";
const FORMAT = "canvasflow/nodes@1";
/** Where a paste lands when it does not follow the pointer: this far off the originals. */
export const PASTE_OFFSET = 40;

/** The selected nodes and the connections between them, ready to paste anywhere. */
export function copyNodes(projectId, nodeIds, graph) {
  const ids = new Set(nodeIds);
  const nodes = [];
  for (const id of ids) {
    const node = graph.nodes.get(id);
    if (node) nodes.push({ id, type: node.type, x: node.x, y: node.y, data: withoutUrls(node.data) });
  }
  const kept = new Set(nodes.map((n) => n.id));
  const connections = [];
  for (const c of graph.connections.values()) {
    if (kept.has(c.source_id) && kept.has(c.target_id)) {
      connections.push({ id: c.id, source: c.source_id, target: c.target_id, port: targetPortOf(c, graph.nodes) });
    }
  }
  return { format: FORMAT, projectId, nodes, connections };
}

/** Node data without the signed URLs (the server signs fresh ones). */
export function withoutUrls(data) {
  const out = {};
  for (const [key, value] of Object.entries(data || {})) if (!key.endsWith("_url")) out[key] = value;
  return out;
}

/** A clipboard read back from storage, or null when it is not one of ours. */
export function parseClipboard(text) {
  try {
    const clip = JSON.parse(text);
    if (clip && clip.format === FORMAT && Array.isArray(clip.nodes) && Array.isArray(clip.connections) && clip.nodes.length) {
      return clip;
    }
  } catch {
    /* not ours */
  }
  return null;
}

/** The box around a group of nodes (positions only; sizes unknown here). */
export function bounds(nodes) {
  const xs = nodes.map((n) => n.x);
  const ys = nodes.map((n) => n.y);
  return { x: Math.min(...xs), y: Math.min(...ys), maxX: Math.max(...xs), maxY: Math.max(...ys) };
}

/**
 * The clip's nodes moved so the group's top-left corner sits at `at` (the pointer), or
 * PASTE_OFFSET right and down of where they were copied when `at` is null.
 */
export function placeClip(clip, at) {
  const box = bounds(clip.nodes);
  const dx = at ? at.x - box.x : PASTE_OFFSET;
  const dy = at ? at.y - box.y : PASTE_OFFSET;
  return {
    ...clip,
    nodes: clip.nodes.map((n) => ({ ...n, x: round(n.x + dx), y: round(n.y + dy) })),
  };
}

const round = (value) => Math.round(value * 10) / 10;
