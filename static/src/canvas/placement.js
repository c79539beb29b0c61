// Where a new node goes when the user did not point at a place: a free spot inside
// the visible part of the canvas, sources in the left columns, videos beside them.
import { NODE_SPECS } from "../nodes/specs.js";

const GAP = 24;
const COLUMN = 340;

/** The visible rectangle of the flow, in flow coordinates, from the viewport and the pane size. */
export function visibleRect({ x, y, zoom }, width, height) {
  const left = -x / zoom;
  const top = -y / zoom;
  const w = width / zoom;
  const h = height / zoom;
  return { x: left, y: top, width: w, height: h, topLeftInset: { x: left + Math.min(120, w * 0.08), y: top + Math.min(96, h * 0.12) } };
}

/** A spot for a new `type` node inside `rect` that overlaps none of `nodes`. */
export function freeSpot(type, rect, nodes, measured = new Map()) {
  const area = rect || { x: 0, y: 0, width: 1200, height: 800, topLeftInset: { x: 120, y: 96 } };
  const size = NODE_SPECS[type]?.size || { width: 260, height: 240 };
  const boxes = nodes.map((n) => {
    const m = measured.get(n.id) || NODE_SPECS[n.type]?.size || size;
    return { x: n.x, y: n.y, w: m.width, h: m.height };
  });
  const free = (x, y) =>
    boxes.every((b) => x + size.width + GAP <= b.x || b.x + b.w + GAP <= x || y + size.height + GAP <= b.y || b.y + b.h + GAP <= y);
  const { x: left, y: top } = area.topLeftInset;
  const fits = (c) => c === 0 || left + c * COLUMN + size.width <= area.x + area.width;
  const columns = (type === "video" ? [1, 3, 2, 0] : [0, 2, 1, 3]).filter(fits);
  // first a spot where the whole card shows (its controls are at the bottom), then one
  // where at least half of it does
  const whole = area.y + area.height - size.height - GAP;
  const half = top + Math.max(area.height - size.height * 0.5, 200);
  for (const bottom of [whole, half]) {
    for (const c of columns) {
      for (let y = top; y <= bottom; y += 40) {
        if (free(left + c * COLUMN, y)) return { x: round(left + c * COLUMN), y: round(y) };
      }
    }
  }
  // the view is full: stagger from its top-left, still in view
  const n = boxes.length % 10;
  return { x: round(left + 24 * n), y: round(top + 24 * n) };
}

const round = (v) => Math.round(v);
