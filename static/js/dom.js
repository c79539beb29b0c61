// Small DOM helpers: build elements declaratively, no framework.

/**
 * Create an element. `props` keys: `class`, `text`, `html` (never with user data),
 * `dataset`, `style` (object), `on<event>` handlers, anything else as an attribute
 * (`false`/`null` omit it, `true` sets it empty). Children: nodes, strings, arrays, null.
 */
export function h(tag, props = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key in el && !svg && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A promise that resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `fn` delayed until `ms` have passed without another call; `.flush()` runs it now. */
export function debounce(fn, ms) {
  let timer = null;
  let lastArgs = null;
  const debounced = (...args) => {
    lastArgs = args;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...lastArgs);
    }, ms);
  };
  debounced.flush = () => {
    if (timer === null) return;
    clearTimeout(timer);
    timer = null;
    fn(...lastArgs);
  };
  debounced.pending = () => timer !== null;
  return debounced;
}

/** Short relative time, e.g. "3 min ago". */
export function timeAgo(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  const units = [
    [60, "min"],
    [24, "h"],
    [30, "d"],
  ];
  let value = seconds / 60;
  let label = "min";
  for (const [size, name] of units.slice(1)) {
    if (value < size) break;
    value /= size;
    label = name;
  }
  if (label === "d" && value > 60) return new Date(iso).toLocaleDateString();
  return `${Math.round(value)} ${label} ago`;
}
