// The canvas's keyboard shortcuts: one table, read by the key handler and shown by `?`.

/** [command, keys as shown, what it does] in the order the `?` dialog lists them. */
export const SHORTCUTS = [
  ["undo", "Ctrl/⌘ Z", "Undo your last change"],
  ["redo", "Ctrl/⌘ Shift Z  ·  Ctrl Y", "Redo"],
  ["copy", "Ctrl/⌘ C", "Copy the selected nodes"],
  ["paste", "Ctrl/⌘ V", "Paste at the pointer (also into another project)"],
  ["duplicate", "Ctrl/⌘ D", "Duplicate the selected nodes"],
  ["selectAll", "Ctrl/⌘ A", "Select every node"],
  ["delete", "Delete  ·  Backspace", "Delete the selection (Undo in the notice)"],
  ["move", "Arrow keys", "Move the selection (Shift: further)"],
  ["escape", "Esc", "Clear the selection, cancel a connection or a menu"],
  ["zoomIn", "+", "Zoom in"],
  ["zoomOut", "−", "Zoom out"],
  ["fit", "0", "Fit every node in view"],
  ["zoomSelection", "F", "Zoom to the selection"],
  ["menu", "Shift F10  ·  Menu", "Open the canvas menu"],
  ["help", "?", "Show these shortcuts"],
];

/** Pointer gestures, for the same dialog. */
export const GESTURES = [
  ["Click · Shift/Ctrl-click", "Select a node · add it to the selection"],
  ["Shift-drag on the canvas", "Select with a rectangle"],
  ["Drag the canvas", "Pan; the wheel zooms"],
  ["Double-click or right-click the canvas", "Add a node there"],
  ["Drag from an output to an input", "Connect (only inputs that fit light up); or Enter on each"],
  ["Drop an image file", "A new image node with it"],
];

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/**
 * The command a key press asks for, or null: `{command, dx?, dy?}`. `inField` is true
 * when the focus is in a text field (then only Escape counts), `onControl` when it is
 * on a button or link of a node (then Delete and the arrows belong to it).
 */
export function matchShortcut(event, { inField = false, onControl = false } = {}) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key;
  if (key === "Escape") return { command: "escape" };
  if (inField) return null;
  if (mod && !event.altKey) {
    const lower = key.toLowerCase();
    if (lower === "z") return { command: event.shiftKey ? "redo" : "undo" };
    if (lower === "y") return { command: "redo" };
    if (lower === "c") return { command: "copy" };
    if (lower === "v") return { command: "paste" };
    if (lower === "d") return { command: "duplicate" };
    if (lower === "a") return { command: "selectAll" };
    return null;
  }
  if (event.altKey) return null;
  if ((key === "Delete" || key === "Backspace") && !onControl) return { command: "delete" };
  if (ARROWS[key] && !onControl) {
    const [dx, dy] = ARROWS[key];
    const step = event.shiftKey ? 40 : 10;
    return { command: "move", dx: dx * step, dy: dy * step };
  }
  if (key === "?") return { command: "help" };
  if (key === "ContextMenu" || (key === "F10" && event.shiftKey)) return { command: "menu" };
  if (onControl) return null;
  if (key === "+" || key === "=") return { command: "zoomIn" };
  if (key === "-" || key === "−") return { command: "zoomOut" };
  if (key === "0") return { command: "fit" };
  if (key === "f" || key === "F") return { command: "zoomSelection" };
  return null;
}
