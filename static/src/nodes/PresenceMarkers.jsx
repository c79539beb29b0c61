// Who else is on a node: a small avatar for each collaborator who has it selected or is
// editing it, in their presence colour (the same in every tab).
import { initials, textOn } from "../canvas/presence.js";

export function PresenceMarkers({ users }) {
  if (!users?.length) return null;
  return (
    <span className="node-presence" aria-label={`Here: ${users.map((u) => u.email).join(", ")}`}>
      {users.map((u) => (
        <span key={u.user_id} className={`mini-avatar${u.editing ? " is-editing" : ""}`} style={{ background: u.color, color: textOn(u.color) }} title={`${u.email}${u.editing ? " is editing" : " selected this"}`}>
          {initials(u.email)}
        </span>
      ))}
    </span>
  );
}
