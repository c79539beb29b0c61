// The canvas toolbar: add nodes, undo/redo, zoom, fit, zoom to selection, shortcuts.
import { useReactFlow, useStore } from "@xyflow/react";
import { ADDABLE_TYPES, NODE_SPECS } from "../nodes/specs.js";

const zoomOf = (s) => s.transform[2];

function Tool({ id, label, onClick, disabled, children, className = "" }) {
  return (
    <button className={`tool ${className}`} type="button" id={id} aria-label={label} title={label} onClick={onClick} disabled={disabled}>
      {children}
    </button>
  );
}

/**
 * Focus a new node's first field (or the node) once React Flow has drawn it: a node is
 * invisible until measured, and an invisible element cannot take the focus, so try
 * each frame until it has it.
 */
export function focusNode(id, tries = 60) {
  const card = document.querySelector(`.node[data-node-id="${id}"]`);
  const target = card && (card.querySelector("textarea") || card.closest(".react-flow__node"));
  target?.focus({ preventScroll: true });
  if (document.activeElement !== target && tries > 0) requestAnimationFrame(() => focusNode(id, tries - 1));
}

export function Toolbar({ commands, hasSelection, onHelp, zoomToSelection, canEdit = true }) {
  const rf = useReactFlow();
  const zoom = useStore(zoomOf);
  return (
    <div className="toolbar" role="toolbar" aria-label="Canvas tools">
      {canEdit && (
      <div className="tool-group">
        {ADDABLE_TYPES.map((type) => (
          <Tool key={type} id={`add-${type}`} label={`Add ${NODE_SPECS[type].title.toLowerCase()} node`} className={`tool-add tool-${type}`} onClick={() => commands.addNode(type).then((n) => focusNode(n.id), () => {})}>
            <span className="tool-plus" aria-hidden="true">
              +
            </span>
            <span className="tool-label">{NODE_SPECS[type].short || NODE_SPECS[type].title}</span>
          </Tool>
        ))}
      </div>
      )}
      {canEdit && (
      <div className="tool-group">
        <Tool id="undo" label="Undo (Ctrl+Z)" disabled={!commands.canUndo} onClick={() => commands.undo()}>
          <svg className="tool-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M9 14L4 9l5-5M4 9h10a6 6 0 0 1 0 12h-3" />
          </svg>
        </Tool>
        <Tool id="redo" label="Redo (Ctrl+Shift+Z)" disabled={!commands.canRedo} onClick={() => commands.redo()}>
          <svg className="tool-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M15 14l5-5-5-5M20 9H10a6 6 0 0 0 0 12h3" />
          </svg>
        </Tool>
      </div>
      )}
      {!canEdit && (
        <p className="tool-group viewer-note small" role="note">
          View only: you are a viewer of this project
        </p>
      )}
      <div className="tool-group">
        <Tool id="zoom-out" label="Zoom out" onClick={() => rf.zoomOut({ duration: 0 })}>
          −
        </Tool>
        <span className="zoom-label" aria-live="polite">
          {Math.round(zoom * 100)}%
        </span>
        <Tool id="zoom-in" label="Zoom in" onClick={() => rf.zoomIn({ duration: 0 })}>
          +
        </Tool>
        <Tool id="zoom-fit" label="Fit all nodes in view" onClick={() => rf.fitView({ padding: 0.15, maxZoom: 1, duration: 0 })}>
          Fit
        </Tool>
        <Tool id="zoom-selection" label="Zoom to selection" disabled={!hasSelection} onClick={zoomToSelection}>
          <svg className="tool-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5M9 12h6M12 9v6" />
          </svg>
        </Tool>
        <Tool id="shortcuts" label="Keyboard shortcuts (?)" onClick={onHelp}>
          ?
        </Tool>
      </div>
    </div>
  );
}
