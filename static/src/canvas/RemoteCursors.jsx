// The others' cursors, drawn live in canvas coordinates (they follow pan and zoom), each
// in its user's colour with their email beside it.
import { ViewportPortal } from "@xyflow/react";
import { textOn } from "./presence.js";

export function RemoteCursors({ others }) {
  const shown = others.filter((u) => u.cursor);
  return (
    <ViewportPortal>
      {shown.map((u) => (
        <div
          key={u.user_id}
          className="remote-cursor"
          data-user-id={u.user_id}
          aria-hidden="true"
          style={{ transform: `translate(${u.cursor.x}px, ${u.cursor.y}px)`, color: u.color }}
        >
          <svg viewBox="0 0 16 16" width="16" height="16">
            <path d="M1 1l5 14 2-6 6-2z" fill="currentColor" stroke="#0d0f14" strokeWidth="1" />
          </svg>
          <span className="remote-cursor-label" style={{ background: u.color, color: textOn(u.color) }}>
            {u.email}
          </span>
        </div>
      ))}
    </ViewportPortal>
  );
}
