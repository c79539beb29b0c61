// The canvas's context menu (right-click, double-click on the canvas, Shift+F10):
// add a node where it was opened, paste there, or act on the selection.
import { useEffect, useRef } from "react";
import { ADDABLE_TYPES, NODE_SPECS } from "../nodes/specs.js";
import { focusNode } from "./Toolbar.jsx";

/** `menu` is {x, y (screen), at (flow point), kind: "pane" | "node"}. */
export function CanvasMenu({ menu, commands, onClose, onSelectAll, onFit, canEdit = true }) {
  const ref = useRef(null);
  useEffect(() => {
    ref.current?.querySelector('[role="menuitem"]')?.focus();
    const away = (event) => {
      if (!ref.current?.contains(event.target)) onClose();
    };
    window.addEventListener("pointerdown", away, true);
    return () => window.removeEventListener("pointerdown", away, true);
  }, [onClose]);

  const run = (fn) => () => {
    onClose();
    fn();
  };
  const all =
    menu.kind === "node"
      ? [
          ["Copy", run(() => commands.copySelection())],
          ["Duplicate", run(() => commands.duplicateSelection())],
          ["Delete", run(() => commands.deleteSelection())],
        ]
      : [
          ...ADDABLE_TYPES.map((type) => [`Add ${NODE_SPECS[type].title.toLowerCase()} node here`, run(() => commands.addNode(type, menu.at).then((n) => focusNode(n.id), () => {}))]),
          ["Paste here", run(() => commands.paste(menu.at))],
          ["Select all", run(onSelectAll)],
          ["Fit all nodes in view", run(onFit)],
        ];
  // a viewer changes nothing: only copying, selecting and looking around
  const items = canEdit ? all : all.filter(([label]) => ["Copy", "Select all", "Fit all nodes in view"].includes(label));

  const onKeyDown = (event) => {
    const all = [...ref.current.querySelectorAll('[role="menuitem"]')];
    const i = all.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      all[(i + (event.key === "ArrowDown" ? 1 : all.length - 1)) % all.length].focus();
    } else if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      event.stopPropagation();
      onClose();
    }
  };

  return (
    <div ref={ref} className="canvas-menu" role="menu" aria-label="Canvas menu" style={{ left: menu.x, top: menu.y }} onKeyDown={onKeyDown}>
      {items.map(([label, onClick]) => (
        <button key={label} type="button" role="menuitem" className="menu-item" onClick={onClick}>
          {label}
        </button>
      ))}
    </div>
  );
}
