// What each node type is, apart from how it draws: its title, the data a new one
// starts with, its size before it is measured. Ports live in canvas/ports.js; the
// components in registry.js.
import { IMAGE_GEN_DEFAULTS } from "./image-gen-view.js";
import { VIDEO_DEFAULTS } from "./video-view.js";

export const NODE_SPECS = {
  prompt: { title: "Prompt", defaults: () => ({ prompt: "" }), size: { width: 260, height: 236 } },
  image: { title: "Image", defaults: () => ({}), size: { width: 260, height: 230 } },
  image_gen: { title: "Image generator", short: "Image gen", defaults: () => ({ ...IMAGE_GEN_DEFAULTS }), size: { width: 280, height: 380 } },
  video: { title: "Video", defaults: () => ({ ...VIDEO_DEFAULTS }), size: { width: 300, height: 420 } },
};

/** The node types the toolbar and menus offer, in order. */
export const ADDABLE_TYPES = ["prompt", "image", "image_gen", "video"];

/** A short human name for a node, used in labels and notices. */
export function nodeTitle(node) {
  const title = NODE_SPECS[node.type]?.title || node.type;
  if (node.type === "prompt" && node.data?.prompt) {
    const text = node.data.prompt.trim();
    return `${title} “${text.length > 24 ? `${text.slice(0, 24)}…` : text}”`;
  }
  return `${title.toLowerCase()} node`;
}
