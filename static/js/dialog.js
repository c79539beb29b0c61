// A modal confirmation built on <dialog> (focus trapping and Escape for free).
import { h } from "./dom.js";

/** Ask the user to confirm; resolves to true when they do. */
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": titleId },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId, class: "dialog-title" }, title),
        h("p", { class: "muted" }, message),
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { class: "btn btn-ghost", value: "cancel", type: "submit" }, "Cancel"),
          h(
            "button",
            { class: `btn ${danger ? "btn-danger" : "btn-primary"}`, value: "ok", type: "submit" },
            confirmLabel,
          ),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector('button[value="ok"]').focus();
  });
}
