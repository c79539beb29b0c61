// The Share dialog: who may open this project and what they may do. The owner adds an
// existing account by email with a role, changes a member's role, removes a member, and
// makes an invitation link to copy (for someone without an account yet). Everyone else
// sees the list and may leave. The list is the live one (members come with the snapshot
// and change with member events), so every open dialog agrees.
import { useEffect, useRef, useState } from "react";

const ROLE_LABELS = { owner: "Owner", editor: "Editor", viewer: "Viewer" };

export function ShareDialog({ api, projectId, members, me, role, onClose, onLeft }) {
  const ref = useRef(null);
  const [email, setEmail] = useState("");
  const [newRole, setNewRole] = useState("editor");
  const [inviteRole, setInviteRole] = useState("viewer");
  const [invite, setInvite] = useState(null);
  const [error, setError] = useState("");
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const owner = role === "owner";
  useEffect(() => {
    ref.current.showModal();
    ref.current.querySelector("input, button")?.focus();
  }, []);

  async function run(fn, done = "") {
    setBusy(true);
    setError("");
    setNote("");
    try {
      await fn();
      if (done) setNote(done);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }

  const list = [...members.values()].sort((a, b) => (a.role === "owner" ? -1 : b.role === "owner" ? 1 : (a.added_at || "").localeCompare(b.added_at || "")));
  return (
    <dialog ref={ref} className="dialog share-dialog" aria-labelledby="share-title" onClose={onClose}>
      <div className="dialog-head">
        <h2 id="share-title" className="dialog-title">
          Share this project
        </h2>
        <button className="icon-btn" type="button" aria-label="Close" onClick={() => ref.current.close()}>
          ×
        </button>
      </div>
      {owner && (
        <form
          className="share-add"
          onSubmit={(e) => {
            e.preventDefault();
            const who = email.trim();
            if (!who) return;
            run(async () => {
              await api.addMember(projectId, who, newRole);
              setEmail("");
            }, `Added ${who} as ${newRole}.`);
          }}
        >
          <label htmlFor="share-email">Add by email</label>
          <div className="share-row">
            <input id="share-email" type="email" autoComplete="off" placeholder="name@example.com" value={email} onChange={(e) => setEmail(e.target.value)} />
            <label className="sr-only" htmlFor="share-role">
              Role for the new member
            </label>
            <select id="share-role" value={newRole} onChange={(e) => setNewRole(e.target.value)}>
              <option value="editor">Editor</option>
              <option value="viewer">Viewer</option>
            </select>
            <button className="btn btn-primary btn-sm" type="submit" disabled={busy}>
              Add
            </button>
          </div>
        </form>
      )}
      <ul className="member-list" aria-label="Members">
        {list.map((m) => {
          const self = m.user_id === me?.id;
          return (
            <li key={m.user_id} className="member" data-user-id={m.user_id}>
              <span className="member-email">
                {m.email}
                {self ? " (you)" : ""}
              </span>
              {owner && m.role !== "owner" ? (
                <>
                  <label className="sr-only" htmlFor={`role-${m.user_id}`}>
                    Role of {m.email}
                  </label>
                  <select id={`role-${m.user_id}`} value={m.role} disabled={busy} onChange={(e) => run(() => api.setMemberRole(projectId, m.user_id, e.target.value), `${m.email} is now ${e.target.value}.`)}>
                    <option value="editor">Editor</option>
                    <option value="viewer">Viewer</option>
                  </select>
                  <button className="btn btn-ghost btn-sm" type="button" aria-label={`Remove ${m.email}`} disabled={busy} onClick={() => run(() => api.removeMember(projectId, m.user_id), `Removed ${m.email}.`)}>
                    Remove
                  </button>
                </>
              ) : (
                <span className="member-role muted">{ROLE_LABELS[m.role] || m.role}</span>
              )}
              {self && m.role !== "owner" && (
                <button className="btn btn-ghost btn-sm" type="button" disabled={busy} onClick={() => run(async () => {
                  await api.removeMember(projectId, m.user_id);
                  onLeft();
                })}>
                  Leave
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {owner && (
        <div className="share-invite">
          <label htmlFor="invite-role">Invitation link</label>
          <div className="share-row">
            <select id="invite-role" value={inviteRole} onChange={(e) => setInviteRole(e.target.value)}>
              <option value="editor">Editor</option>
              <option value="viewer">Viewer</option>
            </select>
            <button className="btn btn-secondary btn-sm" type="button" disabled={busy} onClick={() => run(async () => setInvite(await api.createInvite(projectId, inviteRole)))}>
              Create link
            </button>
          </div>
          {invite && (
            <div className="share-row">
              <label className="sr-only" htmlFor="invite-url">
                Invitation link to copy
              </label>
              <input id="invite-url" readOnly value={invite.url} onFocus={(e) => e.currentTarget.select()} />
              <button
                className="btn btn-primary btn-sm"
                type="button"
                onClick={() => run(async () => {
                  try {
                    await navigator.clipboard.writeText(invite.url);
                  } catch {
                    // no clipboard permission: copy the selected text the old way
                    const field = document.getElementById("invite-url");
                    field.select();
                    if (!document.execCommand("copy")) throw new Error("Copy the selected link with Ctrl+C.");
                  }
                }, "Link copied: it admits one person, once.")}
              >
                Copy link
              </button>
            </div>
          )}
        </div>
      )}
      <p className="share-error node-error" role="alert" hidden={!error}>
        {error}
      </p>
      <p className="share-note muted small" role="status">
        {note}
      </p>
    </dialog>
  );
}
