// The project list: create, open, delete; each card shows a poster of the project's
// latest output (the server signs `poster_url`).
import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "./api.js";
import { confirmDialog } from "./dialog.jsx";
import { useApp } from "./App.jsx";
import { timeAgo } from "./time.js";
import { toast } from "./toasts.jsx";

function Poster({ project }) {
  if (project.poster_url && project.poster_kind === "video") {
    // the first frame of the latest video: a muted, never-playing <video> is the poster
    return <video className="project-poster" src={project.poster_url} muted preload="metadata" aria-hidden="true" tabIndex={-1} />;
  }
  if (project.poster_url) return <img className="project-poster" src={project.poster_url} alt="" />;
  return (
    <span className="project-thumb" aria-hidden="true">
      {project.name.slice(0, 1).toUpperCase()}
    </span>
  );
}

function ProjectCard({ project, onDelete }) {
  const open = `#/p/${project.id}`;
  return (
    <li className="project-card" data-project-id={project.id}>
      <a className="project-link" href={open}>
        <Poster project={project} />
        <span className="project-meta">
          <span className="project-name">{project.name}</span>
          <span className="muted small">
            Edited {timeAgo(project.updated_at)}
            {project.role && project.role !== "owner" ? ` · shared with you (${project.role})` : ""}
          </span>
        </span>
      </a>
      <div className="project-actions">
        <a className="btn btn-secondary btn-sm" href={open} aria-label={`Open ${project.name}`}>
          Open
        </a>
        {(!project.role || project.role === "owner") && (
          <button className="btn btn-ghost btn-sm btn-danger-text" type="button" aria-label={`Delete ${project.name}`} onClick={() => onDelete(project)}>
            Delete
          </button>
        )}
      </div>
    </li>
  );
}

export function ProjectsView() {
  const { navigate } = useApp();
  const [projects, setProjects] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [creating, setCreating] = useState(false);
  const name = useRef(null);

  const load = useCallback(async () => {
    try {
      setProjects(await api.listProjects());
    } catch (err) {
      if (err.status !== 401) setLoadError(err.message);
    }
  }, []);
  useEffect(() => {
    load();
  }, [load]);

  async function remove(project) {
    const ok = await confirmDialog({
      title: `Delete “${project.name}”?`,
      message: "Its nodes, connections and generated videos go with it. This cannot be undone.",
      confirmLabel: "Delete project",
    });
    if (!ok) return;
    try {
      await api.deleteProject(project.id);
      toast(`Deleted “${project.name}”.`, "success");
    } catch (err) {
      toast(err.message, "error");
    }
    load();
  }

  async function create(event) {
    event.preventDefault();
    const value = name.current.value.trim();
    if (!value) {
      name.current.focus();
      return;
    }
    setCreating(true);
    try {
      const project = await api.createProject(value);
      navigate(`#/p/${project.id}`);
    } catch (err) {
      toast(err.message, "error");
      setCreating(false);
    }
  }

  // newest first reads best in a list people come back to
  const sorted = projects && [...projects].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  return (
    <section className="projects-page">
      <div className="page-head">
        <div>
          <h1>Projects</h1>
          <p className="muted">Each project is one canvas.</p>
        </div>
        <form className="inline-form" onSubmit={create}>
          <label htmlFor="new-project-name" className="sr-only">
            New project name
          </label>
          <input ref={name} id="new-project-name" name="name" required maxLength={200} placeholder="Launch teaser" autoComplete="off" />
          <button className="btn btn-primary" type="submit" id="create-project" disabled={creating}>
            Create project
          </button>
        </form>
      </div>
      <ul className="project-grid" id="project-list" aria-busy={projects === null && !loadError}>
        {loadError && <li className="empty-state">Could not load projects: {loadError}</li>}
        {sorted && sorted.length === 0 && (
          <li className="empty-state">
            <strong>No projects yet.</strong>
            <span className="muted"> Name one above to start a canvas.</span>
          </li>
        )}
        {sorted && sorted.map((p) => <ProjectCard key={p.id} project={p} onDelete={remove} />)}
      </ul>
    </section>
  );
}
