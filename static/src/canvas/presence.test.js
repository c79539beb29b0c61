// node --test: the presence throttle and what the canvas draws of the others.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PresenceThrottle, initials, markersByNode, othersHere, textOn } from "./presence.js";

function harness() {
  let t = 0;
  const timers = [];
  const sent = [];
  const throttle = new PresenceThrottle((f) => sent.push({ at: t, ...f }), {
    intervalMs: 50,
    now: () => t,
    setTimer: (fn, ms) => timers.push({ at: t + ms, fn }) && timers.length,
    clearTimer: () => {},
  });
  const advance = (ms) => {
    // one millisecond at a time: each timer fires at its own time
    for (let i = 0; i < ms; i++) {
      t += 1;
      for (const timer of timers.splice(0)) {
        if (timer.at <= t) timer.fn();
        else timers.push(timer);
      }
    }
  };
  return { throttle, sent, advance };
}

test("a moving cursor goes out at most once per 50 ms, merged, the latest position winning", () => {
  const { throttle, sent, advance } = harness();
  throttle.update({ cursor: { x: 1, y: 1 } });
  for (let i = 2; i <= 20; i++) {
    advance(5);
    throttle.update({ cursor: { x: i, y: i } });
  }
  advance(50);
  // 100 ms of movement every 5 ms: the first at once, then one per interval
  assert.deepEqual(sent.map((f) => f.at), [0, 50, 100]);
  assert.deepEqual(sent.at(-1).cursor, { x: 20, y: 20 });
  const span = sent.at(-1).at - sent[0].at;
  assert.ok(sent.length <= span / 50 + 1, "never more than 20 a second");
});

test("changes of different members in one interval go as one frame; unchanged values are not resent", () => {
  const { throttle, sent, advance } = harness();
  throttle.update({ selection: ["a"] });
  throttle.update({ cursor: { x: 1, y: 2 } });
  throttle.update({ editing: "a" });
  advance(50);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1], { at: 50, cursor: { x: 1, y: 2 }, editing: "a" });
  throttle.update({ editing: "a" });
  advance(100);
  assert.equal(sent.length, 2);
});

test("after a resubscribe the whole state is sent again; cleared members stay cleared", () => {
  const { throttle, sent, advance } = harness();
  throttle.update({ selection: ["a"], editing: "a", cursor: { x: 0, y: 0 } });
  advance(60);
  throttle.update({ editing: null });
  advance(60);
  throttle.resend();
  advance(60);
  assert.deepEqual(sent.at(-1), { at: 120, selection: ["a"], cursor: { x: 0, y: 0 } });
});

test("others are everyone but me; markers say who selected or edits each node", () => {
  const presence = new Map([
    ["me", { user_id: "me", email: "me@x", color: "#111", selection: ["n1"] }],
    ["b", { user_id: "b", email: "ben@x", color: "#222", selection: ["n1", "n2"], editing: "n1" }],
    ["a", { user_id: "a", email: "ann@x", color: "#333", selection: [], editing: null }],
  ]);
  const others = othersHere(presence, "me");
  assert.deepEqual(others.map((u) => u.user_id), ["a", "b"]);
  const markers = markersByNode(others);
  assert.deepEqual(markers.get("n1"), [{ user_id: "b", email: "ben@x", color: "#222", selected: true, editing: true }]);
  assert.deepEqual(markers.get("n2"), [{ user_id: "b", email: "ben@x", color: "#222", selected: true, editing: false }]);
  assert.equal(markers.has("n3"), false);
});

test("avatars read well: black or white text on the user's colour, initials from the email", () => {
  assert.equal(textOn("#ffe119"), "#000000");
  assert.equal(textOn("#000075"), "#ffffff");
  assert.equal(textOn("#4363d8"), "#ffffff");
  assert.equal(initials("ben.li@example.com"), "BL");
  assert.equal(initials("canvas1234@example.com"), "C");
});

test("a member the server already cleared (a demotion's editing marker) is forgotten, never resent", () => {
  const { throttle, sent, advance } = harness();
  throttle.update({ editing: "a", cursor: { x: 1, y: 1 } });
  advance(10);
  throttle.update({ editing: "b" });
  throttle.forget("editing");
  advance(60);
  throttle.resend();
  advance(60);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1], { at: 70, cursor: { x: 1, y: 1 } });
});
