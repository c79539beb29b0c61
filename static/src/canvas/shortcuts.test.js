// node --test: key presses to canvas commands.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SHORTCUTS, matchShortcut } from "./shortcuts.js";

const key = (k, mods = {}) => ({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });

test("Ctrl and Cmd both drive undo, redo and the clipboard", () => {
  assert.equal(matchShortcut(key("z", { ctrlKey: true })).command, "undo");
  assert.equal(matchShortcut(key("Z", { metaKey: true, shiftKey: true })).command, "redo");
  assert.equal(matchShortcut(key("y", { ctrlKey: true })).command, "redo");
  assert.equal(matchShortcut(key("c", { metaKey: true })).command, "copy");
  assert.equal(matchShortcut(key("v", { ctrlKey: true })).command, "paste");
  assert.equal(matchShortcut(key("d", { ctrlKey: true })).command, "duplicate");
});

test("in a text field only Escape is the canvas's; on a node's control Delete is not", () => {
  assert.equal(matchShortcut(key("z", { ctrlKey: true }), { inField: true }), null);
  assert.equal(matchShortcut(key("Delete"), { inField: true }), null);
  assert.equal(matchShortcut(key("Escape"), { inField: true }).command, "escape");
  assert.equal(matchShortcut(key("Delete"), { onControl: true }), null);
  assert.equal(matchShortcut(key("Backspace")).command, "delete");
});

test("arrows move the selection, further with Shift", () => {
  assert.deepEqual(matchShortcut(key("ArrowLeft")), { command: "move", dx: -10, dy: 0 });
  assert.deepEqual(matchShortcut(key("ArrowDown", { shiftKey: true })), { command: "move", dx: 0, dy: 40 });
});

test("? shows the shortcuts and every matched command is listed there", () => {
  assert.equal(matchShortcut(key("?", { shiftKey: true })).command, "help");
  const listed = new Set(SHORTCUTS.map(([c]) => c));
  for (const k of ["+", "-", "0", "f", "ContextMenu", "?", "Delete", "ArrowUp", "Escape"]) {
    assert.ok(listed.has(matchShortcut(key(k)).command), k);
  }
});
