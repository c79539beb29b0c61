// Who is here: one avatar per user with the project open (this user first), in their
// presence colour, with how many tabs they have open. Lives in the top bar.
import { initials, textOn } from "./presence.js";

export function PresenceAvatars({ presence, me }) {
  const users = [...presence.values()].sort((a, b) => (a.user_id === me?.id ? -1 : b.user_id === me?.id ? 1 : a.email.localeCompare(b.email)));
  if (!users.length) return null;
  return (
    <ul className="avatars" aria-label="Who is here">
      {users.map((u) => {
        const self = u.user_id === me?.id;
        const what = `${u.email}${self ? " (you)" : ""}${u.tabs > 1 ? `, ${u.tabs} tabs` : ""}`;
        return (
          <li key={u.user_id} className={`avatar${self ? " avatar-me" : ""}`} style={{ background: u.color, color: textOn(u.color) }} title={what} aria-label={what} data-user-id={u.user_id}>
            {initials(u.email)}
          </li>
        );
      })}
    </ul>
  );
}
