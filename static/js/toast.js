// Transient notices in the corner; errors stay until dismissed or replaced.
import { h } from "./dom.js";

const MAX_TOASTS = 4;

/** Show `message`; kind is "info", "success" or "error". */
export function toast(message, kind = "info", { timeoutMs } = {}) {
  const area = document.getElementById("toasts");
  if (!area) return;
  const close = () => el.remove();
  const el = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null },
    h("span", { class: "toast-text", text: message }),
    h("button", { class: "icon-btn toast-close", "aria-label": "Dismiss", onclick: close, text: "×" }),
  );
  area.append(el);
  while (area.children.length > MAX_TOASTS) area.firstElementChild.remove();
  const ms = timeoutMs ?? (kind === "error" ? 8000 : 3500);
  setTimeout(close, ms);
}
