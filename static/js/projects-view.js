// The project list: create, open, delete.
import { api } from "./api.js";
import { confirmDialog } from "./dialog.js";
import { h, mount, timeAgo } from "./dom.js";
import { toast } from "./toast.js";

/** Render the signed-in user's projects into `root`. */
export function renderProjects(root, app) {
  let disposed = false;
  const list = h("ul", { class: "project-grid", id: "project-list", "aria-busy": "true" });
  const name = h("input", {
    id: "new-project-name",
    name: "name",
    required: true,
    maxLength: 200,
    placeholder: "Launch teaser",
    autocomplete: "off",
  });
  const createBtn = h("button", { class: "btn btn-primary", type: "submit", id: "create-project" }, "Create project");

  async function load() {
    try {
      const projects = await api.listProjects();
      if (!disposed) show(projects);
    } catch (err) {
      if (!disposed && err.status !== 401) {
        mount(list, h("li", { class: "empty-state" }, `Could not load projects: ${err.message}`));
      }
    } finally {
      list.setAttribute("aria-busy", "false");
    }
  }

  function show(projects) {
    if (projects.length === 0) {
      mount(
        list,
        h(
          "li",
          { class: "empty-state" },
          h("strong", {}, "No projects yet."),
          h("span", { class: "muted" }, " Name one above to start a canvas."),
        ),
      );
      return;
    }
    // newest first reads best in a list people come back to
    const sorted = [...projects].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    mount(list, sorted.map(card));
  }

  function card(project) {
    const open = `#/p/${project.id}`;
    return h(
      "li",
      { class: "project-card", dataset: { projectId: project.id } },
      h(
        "a",
        { class: "project-link", href: open },
        h("span", { class: "project-thumb", "aria-hidden": "true" }, project.name.slice(0, 1).toUpperCase()),
        h(
          "span",
          { class: "project-meta" },
          h("span", { class: "project-name", text: project.name }),
          h("span", { class: "muted small" }, `Edited ${timeAgo(project.updated_at)}`),
        ),
      ),
      h(
        "div",
        { class: "project-actions" },
        h("a", { class: "btn btn-secondary btn-sm", href: open, "aria-label": `Open ${project.name}` }, "Open"),
        h(
          "button",
          {
            class: "btn btn-ghost btn-sm btn-danger-text",
            type: "button",
            "aria-label": `Delete ${project.name}`,
            onclick: () => remove(project),
          },
          "Delete",
        ),
      ),
    );
  }

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
    const value = name.value.trim();
    if (!value) {
      name.focus();
      return;
    }
    createBtn.disabled = true;
    try {
      const project = await api.createProject(value);
      app.navigate(`#/p/${project.id}`);
    } catch (err) {
      toast(err.message, "error");
      createBtn.disabled = false;
    }
  }

  mount(
    root,
    h(
      "section",
      { class: "projects-page" },
      h(
        "div",
        { class: "page-head" },
        h("div", {}, h("h1", {}, "Projects"), h("p", { class: "muted" }, "Each project is one canvas.")),
        h(
          "form",
          { class: "inline-form", onsubmit: create },
          h("label", { for: "new-project-name", class: "sr-only" }, "New project name"),
          name,
          createBtn,
        ),
      ),
      list,
    ),
  );
  load();
  return {
    dispose() {
      disposed = true;
    },
  };
}
