// Who else is on a node: a small avatar for each collaborator who has it selected or is
// editing it, in their presence colour (the same in every tab).

/** Up to two letters for an avatar from an email: "ben.li@x" → "BL". */
export function initials(email = "") {
  const name = email.split("@")[0] || "?";
  const parts = name.split(/[._+-]+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts[1]?.[0] || "")).toUpperCase();
}

export function PresenceMarkers({ users }) {
  if (!users?.length) return null;
  return (
    <span className="node-presence" aria-label={`Here: ${users.map((u) => u.email).join(", ")}`}>
      {users.map((u) => (
        <span key={u.user_id} className={`mini-avatar${u.editing ? " is-editing" : ""}`} style={{ background: u.color }} title={`${u.email}${u.editing ? " is editing" : " selected this"}`}>
          {initials(u.email)}
        </span>
      ))}
    </span>
  );
}
