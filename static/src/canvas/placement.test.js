// node --test: where a node added from the toolbar goes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { NODE_SPECS } from "../nodes/specs.js";
import { freeSpot, visibleRect } from "./placement.js";

// a 1280 × 744 pane at 100 %, scrolled to the origin
const VIEW = visibleRect({ x: 0, y: 0, zoom: 1 }, 1280, 744);
const node = (id, type, { x, y }) => ({ id, type, x, y });
const bottomOf = (type, spot) => spot.y + NODE_SPECS[type].size.height;

/** Add `types` one after another, each where freeSpot puts it. */
function addAll(types, rect = VIEW) {
  const nodes = [];
  for (const type of types) nodes.push(node(`n${nodes.length}`, type, freeSpot(type, rect, nodes)));
  return nodes;
}

test("a second video goes beside the first, where all of it shows, not below it half off-screen", () => {
  const [, first, second] = addAll(["prompt", "video", "video"]);
  assert.equal(second.y, first.y);
  assert.ok(second.x >= first.x + NODE_SPECS.video.size.width, JSON.stringify(second));
  for (const v of [first, second]) assert.ok(bottomOf("video", v) <= VIEW.y + VIEW.height, JSON.stringify(v));
});

test("nodes never overlap and every one starts inside the view", () => {
  const nodes = addAll(["prompt", "video", "image", "video", "prompt", "image_gen", "video"]);
  for (const n of nodes) {
    assert.ok(n.x >= VIEW.x && n.x < VIEW.x + VIEW.width && n.y >= VIEW.y && n.y < VIEW.y + VIEW.height, JSON.stringify(n));
  }
  const box = (n) => ({ ...n, ...NODE_SPECS[n.type].size });
  for (const [i, a] of nodes.map(box).entries()) {
    for (const b of nodes.map(box).slice(i + 1)) {
      const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
      assert.ok(apart, `${a.id} overlaps ${b.id}`);
    }
  }
});

test("when no spot shows a whole card, half of one will do, and a crowded view still places in it", () => {
  const short = visibleRect({ x: 0, y: 0, zoom: 1 }, 1280, 400); // shorter than a video card
  const spot = freeSpot("video", short, []);
  assert.ok(spot.y < short.y + short.height && bottomOf("video", spot) > short.y + short.height, JSON.stringify(spot));
  const crowded = addAll(Array(12).fill("prompt"), short);
  const last = crowded.at(-1);
  assert.ok(last.y < short.y + short.height, JSON.stringify(last));
});

test("the spot follows the view when it has been panned and zoomed", () => {
  const panned = visibleRect({ x: -2000, y: -1500, zoom: 0.5 }, 1280, 744);
  const spot = freeSpot("video", panned, []);
  assert.ok(spot.x > panned.x && spot.x < panned.x + panned.width, JSON.stringify(spot));
  assert.ok(spot.y > panned.y && bottomOf("video", spot) <= panned.y + panned.height, JSON.stringify(spot));
});
