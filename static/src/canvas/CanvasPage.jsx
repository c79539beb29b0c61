// One project's canvas page: the live store and its link to the server, the command
// API, the project name and link status in the top bar, and the flow.
import { ReactFlowProvider } from "@xyflow/react";
import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { createPortal } from "react-dom";
import { api } from "../app/api.js";
import { useApp } from "../app/App.jsx";
import { toast } from "../app/toasts.jsx";
import { CommandsContext } from "./context.js";
import { createCommands } from "./commands.js";
import { Flow } from "./Flow.jsx";
import { openLive } from "./live.js";
import { portTableFrom, setPortTable } from "./ports.js";
import { PresenceAvatars } from "./PresenceAvatars.jsx";
import { BudgetBadge } from "./BudgetBadge.jsx";
import { PresenceThrottle } from "./presence.js";
import { ShareDialog } from "./ShareDialog.jsx";
import { LiveStore } from "./store.js";

const LINK_LABELS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
const LINK_TITLES = { live: "Receiving changes live", offline: "No connection to the server" };

function ProjectName({ store, projectId }) {
  const view = useSyncExternalStore(store.subscribe, store.getView);
  const name = view.project?.name || "";
  const input = useRef(null);
  const [draft, setDraft] = useState(null); // what the user is typing, until saved
  useEffect(() => {
    if (name) document.title = `${name} · canvasflow`;
  }, [name]);
  async function save() {
    const value = (draft ?? name).trim();
    setDraft(null);
    if (!value || value === name) return;
    try {
      store.setProject(await api.renameProject(projectId, value));
    } catch (err) {
      toast(err.message, "error");
    }
  }
  return (
    <>
      <label htmlFor="project-name" className="sr-only">
        Project name
      </label>
      <input
        ref={input}
        id="project-name"
        className="project-name-input"
        maxLength={200}
        autoComplete="off"
        value={draft ?? name}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={save}
        onKeyDown={(e) => {
          if (e.key === "Enter") e.currentTarget.blur();
        }}
      />
    </>
  );
}

export function CanvasPage({ projectId }) {
  const app = useApp();
  const [store] = useState(() => {
    const s = new LiveStore(projectId);
    s.me = app.user || null;
    return s;
  });
  const [commands] = useState(() => createCommands({ projectId, store, api, notify: toast }));
  const [link, setLink] = useState("connecting");
  const [sharing, setSharing] = useState(false);
  const view = useSyncExternalStore(store.subscribe, store.getView);

  useEffect(() => {
    let over = false;
    // one notice, once, whoever finds out first (the REST read or the websocket)
    const ended = (reason) => {
      if (over) return;
      over = true;
      if (reason === "unauthenticated") {
        app.sessionEnded();
        return;
      }
      const message =
        reason === "deleted"
          ? "This project was deleted."
          : reason === "revoked"
            ? "You were removed from this project: it is no longer shared with you."
            : "That project does not exist, or it is not yours.";
      toast(message, "error", { key: "project-ended" });
      app.navigate("#/");
    };
    // the ports the server checks links with: labelled handles and the drag rules
    api.nodeTypes().then(
      (answer) => {
        setPortTable(portTableFrom(answer));
        store.changed();
      },
      () => {}, // the built-in table (the same) stays
    );
    api.getProject(projectId).then(
      (project) => store.setProject(project),
      (err) => {
        if (err.status === 404 || err.status === 422) ended("not_found");
        else if (err.status !== 401) toast(err.message, "error");
      },
    );
    // this tab's presence: cursor, selection and editing marker, at most 20 frames a second
    let live = null;
    const presence = new PresenceThrottle((frame) => live?.sendPresence(frame) ?? false);
    commands.attachPresence({
      cursor: (at) => presence.update({ cursor: at ? { x: Math.round(at.x * 10) / 10, y: Math.round(at.y * 10) / 10 } : null }),
      selection: (ids) => presence.update({ selection: ids.slice(0, 100) }),
      // only an editor's marker: a viewer's would be refused
      editing: (id) => (id === null || commands.canEdit()) && presence.update({ editing: id }),
    });
    let selection = "";
    const unwatch = store.subscribe(() => {
      // demoted to viewer: the server cleared our editing marker; never send it again
      if (!commands.canEdit() && presence.state.editing) presence.forget("editing");
      const ids = [...store.getView().selectedNodes].sort();
      const key = ids.join(",");
      if (key !== selection) {
        selection = key;
        presence.update({ selection: ids });
      }
    });
    live = openLive(projectId, store, {
      onStatus: setLink,
      onEnded: ended,
      onRefused: (error) => toast(error.message, "error", { key: "refused" }),
      onResubscribed: () => presence.resend(),
    });
    return () => {
      over = true;
      unwatch();
      presence.stop();
      live.close();
    };
  }, [projectId]); // eslint-disable-line react-hooks/exhaustive-deps

  const top = app.topCenter && createPortal(
    <>
      <a className="back-link" href="#/" aria-label="All projects">
        ← Projects
      </a>
      <ProjectName store={store} projectId={projectId} />
      <PresenceAvatars presence={view.presence} me={app.user} />
      <BudgetBadge api={api} jobs={view.jobs} commands={commands} />
      <button className="btn btn-ghost btn-sm share-button" type="button" id="share" onClick={() => setSharing(true)}>
        Share
      </button>
      <span className="link-status" id="link-status" data-state={link} role="status" title={LINK_TITLES[link] || "Connecting to the server"}>
        <span className="dot" aria-hidden="true" />
        <span className="link-text">{LINK_LABELS[link] || link}</span>
      </span>
    </>,
    app.topCenter,
  );
  return (
    <CommandsContext.Provider value={commands}>
      {top}
      <section className="canvas-page">
        <ReactFlowProvider>
          <Flow store={store} commands={commands} />
        </ReactFlowProvider>
      </section>
      {sharing && (
        <ShareDialog
          api={api}
          projectId={projectId}
          members={view.members}
          me={app.user}
          role={view.role}
          onClose={() => setSharing(false)}
          onLeft={() => {
            toast("You left the project.", "info", { key: "project-ended" });
            app.navigate("#/");
          }}
        />
      )}
    </CommandsContext.Provider>
  );
}
