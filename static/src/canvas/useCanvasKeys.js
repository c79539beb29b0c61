// The canvas's key handler: shortcuts.js says which command a key asks for, this
// hook carries it out. It listens on the document, after React Flow's own handlers
// (a focused node moves itself with the arrows and marks the event handled).
import { useEffect, useRef } from "react";
import { matchShortcut } from "./shortcuts.js";

const TEXT_FIELDS = "input, textarea, select, [contenteditable]";
const CONTROLS = "button, a[href], video, [role=button], [role=menuitem]";

/** `actions`: {commands, store, rf, rfStore, wrapper, pointerAt(), nudge(dx, dy), openMenu(), closeMenu(), menuOpen(), showHelp(), zoomToSelection()} */
export function useCanvasKeys(actions) {
  const ref = useRef(actions);
  ref.current = actions;
  useEffect(() => {
    function onKeyDown(event) {
      const a = ref.current;
      if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
      const target = event.target instanceof Element ? event.target : document.body;
      const inField = !!target.closest(TEXT_FIELDS);
      const onControl = !!target.closest(CONTROLS);
      const match = matchShortcut(event, { inField, onControl });
      if (!match) return;
      const view = a.store.getView();
      const selected = view.selectedNodes.size > 0;
      const onCanvas = target === document.body || !!a.wrapper.current?.contains(target);
      const handled = () => event.preventDefault();
      switch (match.command) {
        case "undo":
          handled();
          a.commands.undo();
          break;
        case "redo":
          handled();
          a.commands.redo();
          break;
        case "copy":
          if (!selected || String(window.getSelection?.() || "")) return;
          handled();
          a.commands.copySelection();
          break;
        case "paste":
          handled();
          a.commands.paste(a.pointerAt());
          break;
        case "duplicate":
          if (!selected) return;
          handled();
          a.commands.duplicateSelection();
          break;
        case "selectAll":
          handled();
          a.store.select([...view.nodes.keys()]);
          break;
        case "delete":
          if (!selected && view.selectedEdges.size === 0) return;
          handled();
          a.commands.deleteSelection();
          break;
        case "move":
          if (!selected) return;
          handled();
          a.nudge(match.dx, match.dy);
          break;
        case "escape":
          if (a.rfStore.getState().connectionClickStartHandle) {
            a.rfStore.setState({ connectionClickStartHandle: null });
          } else if (a.menuOpen()) {
            a.closeMenu();
          } else if (!inField) {
            a.store.select([]);
          } else {
            return;
          }
          handled();
          break;
        case "help":
          handled();
          a.showHelp();
          break;
        case "menu":
          if (!onCanvas) return;
          handled();
          a.openMenu();
          break;
        case "zoomIn":
        case "zoomOut":
        case "fit":
        case "zoomSelection":
          if (!onCanvas) return;
          handled();
          if (match.command === "zoomIn") a.rf.zoomIn({ duration: 0 });
          else if (match.command === "zoomOut") a.rf.zoomOut({ duration: 0 });
          else if (match.command === "fit") a.rf.fitView({ padding: 0.15, maxZoom: 1, duration: 0 });
          else a.zoomToSelection();
          break;
        default:
      }
    }
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, []);
}
