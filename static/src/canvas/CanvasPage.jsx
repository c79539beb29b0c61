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
      const message = reason === "deleted" ? "This project was deleted." : "That project does not exist, or it is not yours.";
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
    const live = openLive(projectId, store, { onStatus: setLink, onEnded: ended });
    return () => {
      over = true;
      live.close();
    };
  }, [projectId]); // eslint-disable-line react-hooks/exhaustive-deps

  const top = app.topCenter && createPortal(
    <>
      <a className="back-link" href="#/" aria-label="All projects">
        ← Projects
      </a>
      <ProjectName store={store} projectId={projectId} />
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
    </CommandsContext.Provider>
  );
}
