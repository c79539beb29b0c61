// One view per node on the canvas: a card with a header, a body per node type, and
// connection handles. Views keep their own transient UI state (unsaved prompt text,
// an upload in flight) and are updated from the store on every change.
import { debounce, h } from "./dom.js";
import { isLive } from "./store.js";

export const NODE_TYPES = {
  prompt: { title: "Prompt", hasIn: false, hasOut: true },
  image: { title: "Image", hasIn: false, hasOut: true },
  video: { title: "Video", hasIn: true, hasOut: false },
};

const ICONS = {
  prompt: "M4 5h16M4 10h16M4 15h10",
  image: "M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9.5a1.5 1.5 0 1 0 0-.01",
  video: "M3 6h13v12H3zM16 10l5-3v10l-5-3",
};

export const RESOLUTIONS = ["720p", "1080p"];
export const DURATIONS = [4, 6, 8];
export const ASPECT_RATIOS = ["16:9", "9:16"];
export const STATUS_LABELS = {
  idle: "Idle",
  pending: "Pending",
  processing: "Processing",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** A short human name for a node, used in labels. */
export function nodeLabel(node) {
  const title = NODE_TYPES[node.type]?.title || node.type;
  if (node.type === "prompt" && node.data?.prompt) {
    const text = node.data.prompt.trim();
    return `${title} “${text.length > 24 ? `${text.slice(0, 24)}…` : text}”`;
  }
  return title;
}

/** Build the view of `node`. */
export function createNodeView(ctx, node) {
  const View = { prompt: PromptView, image: ImageView, video: VideoView }[node.type] || NodeView;
  return new View(ctx, node);
}

function icon(type) {
  return h(
    "svg:svg",
    { class: "node-icon", viewBox: "0 0 24 24", "aria-hidden": "true" },
    h("svg:path", { d: ICONS[type] || ICONS.prompt }),
  );
}

function statusBadge() {
  return h("span", { class: "badge", dataset: { status: "idle" } }, "Idle");
}

function setBadge(badge, status) {
  badge.dataset.status = status;
  badge.textContent = STATUS_LABELS[status] || status;
}

class NodeView {
  constructor(ctx, node) {
    this.ctx = ctx;
    this.id = node.id;
    this.type = node.type;
    const spec = NODE_TYPES[node.type] || { title: node.type };
    this.titleId = `node-title-${node.id}`;
    this.badge = statusBadge();
    this.deleteBtn = h(
      "button",
      {
        class: "icon-btn node-delete",
        type: "button",
        "aria-label": `Delete ${spec.title.toLowerCase()} node`,
        title: "Delete node",
        onclick: () => ctx.deleteNode(this.id),
      },
      h("svg:svg", { viewBox: "0 0 24 24", "aria-hidden": "true" }, h("svg:path", { d: "M6 6l12 12M18 6L6 18" })),
    );
    this.body = h("div", { class: "node-body" });
    this.el = h(
      "article",
      {
        class: `node node-${node.type}`,
        dataset: { nodeId: node.id, type: node.type },
        "aria-labelledby": this.titleId,
        tabindex: "-1",
      },
      h(
        "header",
        { class: "node-head" },
        icon(node.type),
        h("h3", { class: "node-title", id: this.titleId }, spec.title),
        this.badge,
        this.deleteBtn,
      ),
      this.body,
    );
    if (spec.hasIn) {
      this.inHandle = h("button", {
        class: "handle handle-in",
        type: "button",
        "aria-label": `Connect into this ${spec.title.toLowerCase()} node`,
        title: "Input: drop a connection here",
        onclick: () => ctx.completeConnect(this.id),
      });
      this.el.append(this.inHandle);
    }
    if (spec.hasOut) {
      this.outHandle = h("button", {
        class: "handle handle-out",
        type: "button",
        "aria-label": `Connect from this ${spec.title.toLowerCase()} node`,
        title: "Output: drag to a video node",
        onpointerdown: (event) => ctx.beginConnect(event, this.id),
        onclick: (event) => ctx.armConnect(event, this.id),
      });
      this.el.append(this.outHandle);
    }
    this.badge.hidden = true;
  }

  /** Render `node` (the store's current copy). */
  update(node) {
    this.node = node;
  }

  /** Whether a store update may overwrite what the user is editing. */
  busy() {
    return false;
  }

  dispose() {
    this.el.remove();
  }
}

class PromptView extends NodeView {
  constructor(ctx, node) {
    super(ctx, node);
    const inputId = `prompt-${node.id}`;
    this.dirty = false;
    this.saveState = h("span", { class: "save-state muted small", "aria-live": "polite" });
    this.counter = h("span", { class: "muted small counter" });
    this.textarea = h("textarea", {
      id: inputId,
      class: "prompt-input",
      rows: 5,
      maxLength: 4000,
      placeholder: "Describe the shot: subject, motion, light, camera…",
      spellcheck: true,
    });
    this.save = debounce(() => this.flush(), 500);
    this.textarea.addEventListener("input", () => {
      this.dirty = true;
      this.saveState.textContent = "Editing…";
      this.updateCounter();
      this.save();
      ctx.promptEdited(this.id);
    });
    this.textarea.addEventListener("blur", () => this.save.flush());
    this.textarea.value = node.data?.prompt || "";
    this.body.append(
      h("label", { class: "field-label", for: inputId }, "Prompt text"),
      this.textarea,
      h("div", { class: "node-foot" }, this.saveState, this.counter),
    );
    this.updateCounter();
  }

  updateCounter() {
    this.counter.textContent = `${this.textarea.value.length} / 4000`;
  }

  async flush() {
    const text = this.textarea.value;
    this.saveState.textContent = "Saving…";
    try {
      await this.ctx.patchNodeData(this.id, { prompt: text });
      if (this.textarea.value === text && !this.save.pending()) {
        this.dirty = false;
        this.saveState.textContent = "Saved";
      }
    } catch (err) {
      this.saveState.textContent = `Not saved: ${err.message}`;
      this.save(); // try again shortly
    }
  }

  /** The text as the user sees it, saved or not. */
  text() {
    return this.textarea.value;
  }

  /** Unsaved or in-flight edits: the store's copy is older than what the user typed. */
  busy() {
    return this.dirty;
  }

  update(node) {
    super.update(node);
    const text = node.data?.prompt || "";
    if (!this.busy() && this.textarea.value !== text) {
      // another tab edited it: take its text, keeping the caret where it was
      const focused = document.activeElement === this.textarea;
      const { selectionStart, selectionEnd } = this.textarea;
      this.textarea.value = text;
      if (focused) this.textarea.setSelectionRange(Math.min(selectionStart, text.length), Math.min(selectionEnd, text.length));
      this.updateCounter();
      this.ctx.promptEdited(this.id);
    }
  }

  dispose() {
    this.save.flush();
    super.dispose();
  }
}

class ImageView extends NodeView {
  constructor(ctx, node) {
    super(ctx, node);
    const inputId = `image-file-${node.id}`;
    this.uploading = false;
    this.imageKey = null;
    this.img = h("img", { class: "image-preview", alt: "", hidden: true, draggable: false });
    this.empty = h(
      "div",
      { class: "dropzone-text" },
      h("strong", {}, "Drop an image here"),
      h("span", { class: "muted small" }, "PNG, JPEG or WebP"),
    );
    this.frame = h("div", { class: "image-frame" }, this.img, this.empty);
    this.dims = h("span", { class: "image-dims small", hidden: true });
    this.frame.append(this.dims);
    this.img.addEventListener("load", () => {
      this.dims.textContent = `${this.img.naturalWidth} × ${this.img.naturalHeight}`;
      this.dims.hidden = false;
    });
    this.file = h("input", {
      id: inputId,
      class: "sr-only",
      type: "file",
      accept: "image/png,image/jpeg,image/webp",
      tabindex: "-1",
      onchange: () => {
        if (this.file.files[0]) this.upload(this.file.files[0]);
        this.file.value = "";
      },
    });
    this.button = h(
      "button",
      { class: "btn btn-secondary btn-sm", type: "button", onclick: () => this.file.click() },
      "Upload image",
    );
    this.error = h("p", { class: "node-error", role: "alert", hidden: true });
    this.body.append(
      h("label", { class: "sr-only", for: inputId }, "Image file"),
      this.frame,
      this.file,
      h("div", { class: "node-actions" }, this.button),
      this.error,
    );
    for (const type of ["dragenter", "dragover"]) {
      this.frame.addEventListener(type, (event) => {
        event.preventDefault();
        this.frame.classList.add("drop-target");
      });
    }
    this.frame.addEventListener("dragleave", () => this.frame.classList.remove("drop-target"));
    this.frame.addEventListener("drop", (event) => {
      event.preventDefault();
      this.frame.classList.remove("drop-target");
      const file = event.dataTransfer?.files?.[0];
      if (file) this.upload(file);
    });
  }

  async upload(file) {
    if (!file.type.startsWith("image/")) {
      this.showError("That file is not an image.");
      return;
    }
    this.uploading = true;
    this.error.hidden = true;
    this.render();
    try {
      await this.ctx.uploadImage(this.id, file);
    } catch (err) {
      this.showError(`Upload failed: ${err.message}`);
    } finally {
      this.uploading = false;
      this.render();
    }
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  update(node) {
    super.update(node);
    this.render();
  }

  render() {
    const data = this.node?.data || {};
    const key = data.image_key || null;
    // a re-signed URL for the same object must not reload the picture
    if (key !== this.imageKey || (key && !this.img.getAttribute("src"))) {
      this.imageKey = key;
      if (key && data.image_url) this.img.src = data.image_url;
      else this.img.removeAttribute("src");
    }
    this.latestUrl = data.image_url;
    this.img.onerror = () => {
      if (this.latestUrl && this.img.src !== this.latestUrl) this.img.src = this.latestUrl;
    };
    const has = Boolean(key);
    this.img.hidden = !has;
    if (!has) this.dims.hidden = true;
    this.img.alt = has ? `Uploaded image${data.filename ? `: ${data.filename}` : ""}` : "";
    this.empty.hidden = has;
    this.frame.classList.toggle("has-image", has);
    this.el.classList.toggle("is-uploading", this.uploading);
    this.button.disabled = this.uploading;
    this.button.textContent = this.uploading ? "Uploading…" : has ? "Replace image" : "Upload image";
  }
}

class VideoView extends NodeView {
  constructor(ctx, node) {
    super(ctx, node);
    this.badge.hidden = false;
    this.videoKey = null;
    const sid = (name) => `${name}-${node.id}`;
    this.promptInfo = h("dd", { class: "input-value" });
    this.imageInfo = h("dd", { class: "input-value" });
    this.inputs = h(
      "dl",
      { class: "inputs" },
      h("div", {}, h("dt", {}, "Prompt"), this.promptInfo),
      h("div", {}, h("dt", {}, "Image"), this.imageInfo),
    );
    const select = (name, label, options, format) => {
      const el = h(
        "select",
        { id: sid(name), name, onchange: () => this.settingChanged(name, el.value) },
        options.map((o) => h("option", { value: String(o) }, format ? format(o) : String(o))),
      );
      return [el, h("div", { class: "setting" }, h("label", { for: sid(name) }, label), el)];
    };
    let row;
    [this.resolution, row] = select("resolution", "Resolution", RESOLUTIONS);
    const settings = [row];
    [this.duration, row] = select("duration", "Duration", DURATIONS, (d) => `${d} s`);
    settings.push(row);
    [this.aspect, row] = select("aspect_ratio", "Aspect", ASPECT_RATIOS);
    settings.push(row);

    this.bar = h("div", { class: "progress-fill" });
    this.progressText = h("span", { class: "progress-text small" });
    this.progress = h(
      "div",
      {
        class: "progress",
        role: "progressbar",
        "aria-label": "Generation progress",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": "0",
        hidden: true,
      },
      this.bar,
    );
    this.error = h("p", { class: "node-error", role: "alert", hidden: true });
    this.generateBtn = h(
      "button",
      { class: "btn btn-primary btn-sm generate", type: "button", onclick: () => this.generate() },
      "Generate",
    );
    this.cancelBtn = h(
      "button",
      { class: "btn btn-secondary btn-sm cancel", type: "button", hidden: true, onclick: () => this.cancel() },
      "Cancel",
    );
    this.hint = h("p", { class: "muted small hint" });
    this.video = h("video", {
      class: "video-preview",
      controls: true,
      preload: "metadata",
      playsInline: true,
      hidden: true,
    });
    this.video.addEventListener("error", () => {
      // an expired signature: switch to the freshest URL the server sent
      const url = this.node?.data?.video_url;
      if (url && this.video.src !== url) this.video.src = url;
    });
    this.openLink = h(
      "a",
      { class: "open-link small", target: "_blank", rel: "noopener", hidden: true },
      "Open in new tab ↗",
    );
    this.meta = h("span", { class: "video-meta muted small" });
    this.videoFoot = h("div", { class: "video-foot", hidden: true }, this.openLink, this.meta);
    this.body.append(
      this.inputs,
      h("div", { class: "settings" }, settings),
      h("div", { class: "status-row" }, this.progress, this.progressText),
      this.error,
      h("div", { class: "node-actions" }, this.generateBtn, this.cancelBtn),
      this.hint,
      this.video,
      this.videoFoot,
    );
    this.submitting = false;
  }

  busy() {
    return false;
  }

  settingChanged(name, value) {
    const data = { [name]: name === "duration" ? Number(value) : value };
    this.ctx.patchNodeData(this.id, data).catch((err) => this.ctx.notify(err.message, "error"));
  }

  params() {
    return {
      resolution: this.resolution.value,
      duration: Number(this.duration.value),
      aspect_ratio: this.aspect.value,
    };
  }

  async generate() {
    this.submitting = true;
    this.render();
    try {
      await this.ctx.generateVideo(this.id, this.params());
    } catch (err) {
      this.ctx.notify(err.message, "error");
    } finally {
      this.submitting = false;
      this.render();
    }
  }

  async cancel() {
    const job = this.ctx.store.latestJob(this.id);
    if (!job) return;
    this.cancelBtn.disabled = true;
    try {
      await this.ctx.cancelJob(job.job_id);
    } catch (err) {
      this.ctx.notify(err.message, "error");
    } finally {
      this.cancelBtn.disabled = false;
    }
  }

  update(node) {
    super.update(node);
    this.render();
  }

  render() {
    const node = this.node;
    if (!node) return;
    const data = node.data || {};
    const store = this.ctx.store;

    // settings follow the node's data unless the user has one of them focused
    const setIf = (el, value) => {
      if (value !== undefined && value !== null && document.activeElement !== el) el.value = String(value);
    };
    setIf(this.resolution, data.resolution);
    setIf(this.duration, data.duration);
    setIf(this.aspect, data.aspect_ratio);

    // inputs from connected nodes
    const inputs = this.ctx.inputsOf(this.id);
    const prompt = inputs.find((n) => n.type === "prompt");
    const image = inputs.find((n) => n.type === "image");
    const promptText = prompt ? this.ctx.promptText(prompt.id).trim() : "";
    this.promptInfo.textContent = prompt
      ? promptText || "Connected prompt is empty"
      : "Connect a prompt node";
    this.promptInfo.classList.toggle("missing", !promptText);
    this.imageInfo.textContent = image
      ? image.data?.image_key
        ? "Connected image"
        : "Connected, no image uploaded yet"
      : "Optional: connect an image";
    this.imageInfo.classList.toggle("missing", !image);

    // the latest job drives status, progress and errors; the node's own status otherwise
    const job = store.latestJob(this.id);
    const status = job ? job.status : node.status === "processing" ? "pending" : node.status || "idle";
    const running = isLive(status);
    setBadge(this.badge, status);
    this.el.dataset.status = status;
    const pct = job ? Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100) : 0;
    this.progress.hidden = !running;
    this.progress.setAttribute("aria-valuenow", String(pct));
    this.bar.style.width = `${running ? Math.max(pct, 2) : 0}%`;
    this.progressText.textContent = running ? (status === "pending" ? "Queued…" : `${pct}%`) : "";
    const errorText = status === "failed" ? (job && job.error) || node.error_message || "Generation failed." : "";
    this.error.hidden = !errorText;
    this.error.textContent = errorText ? `Generation failed: ${errorText}` : "";

    this.cancelBtn.hidden = !running;
    this.generateBtn.hidden = running;
    this.generateBtn.disabled = this.submitting || !promptText;
    this.generateBtn.textContent = this.submitting
      ? "Submitting…"
      : job || data.video_key
        ? "Regenerate"
        : "Generate";
    this.hint.textContent = !promptText
      ? prompt
        ? "Write the connected prompt to generate."
        : "Drag from a prompt node's output to this node's input."
      : "";
    this.hint.hidden = !this.hint.textContent;

    // the video, whenever one exists, whatever the status
    const key = data.video_key || null;
    const url = data.video_url || null;
    if (key !== this.videoKey) {
      this.videoKey = key;
      if (url) this.video.src = url;
      else this.video.removeAttribute("src");
    }
    this.video.hidden = !url;
    this.videoFoot.hidden = !url;
    this.openLink.hidden = !url;
    if (url) this.openLink.href = url;
    // what the shown clip is, from the job that made it
    const made = [...store.jobs.values()].find((j) => j.node_id === this.id && j.result?.video_key === key);
    const r = made?.result;
    this.meta.textContent = r ? [r.resolution, r.duration && `${r.duration} s`, r.aspect_ratio].filter(Boolean).join(" · ") : "";
    this.video.setAttribute("aria-label", "Generated video");
  }
}
