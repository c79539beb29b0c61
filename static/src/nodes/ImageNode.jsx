// An image node: an uploaded picture a video node may start from. Drop a file on it or
// choose one; a re-signed URL for the same picture never reloads it.
import { memo, useRef, useState } from "react";
import { useCommands } from "../canvas/context.js";
import { NodeCard } from "./NodeCard.jsx";

const ACCEPT = "image/png,image/jpeg,image/webp";

function ImageNodeView({ data, selected }) {
  const { node, canEdit = true, presence } = data;
  const commands = useCommands();
  const [uploading, setUploading] = useState(false);
  const [error, setError] = useState(null);
  const [dims, setDims] = useState(null);
  const [over, setOver] = useState(false);
  const file = useRef(null);
  const shown = useRef({ key: null, url: null });
  const key = node.data?.image_key || null;
  const url = node.data?.image_url || null;
  // keep the URL the picture was first loaded from until the key changes
  if (shown.current.key !== key || !shown.current.url) shown.current = { key, url };
  const src = key ? shown.current.url : null;

  async function upload(chosen) {
    if (!chosen.type.startsWith("image/")) {
      setError("That file is not an image.");
      return;
    }
    setUploading(true);
    setError(null);
    try {
      await commands.uploadImage(node.id, chosen);
    } catch (err) {
      setError(`Upload failed: ${err.message}`);
    } finally {
      setUploading(false);
    }
  }

  const inputId = `image-file-${node.id}`;
  const name = node.data?.filename;
  return (
    <NodeCard node={node} selected={selected} canEdit={canEdit} presence={presence} className={uploading ? "is-uploading" : ""}>
      <label className="sr-only" htmlFor={inputId}>
        Image file
      </label>
      <div
        className={`image-frame${key ? " has-image" : ""}${over ? " drop-target" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          e.stopPropagation();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          e.stopPropagation();
          setOver(false);
          if (!canEdit) return;
          const dropped = e.dataTransfer?.files?.[0];
          if (dropped) upload(dropped);
        }}
      >
        {src ? (
          <img
            className="image-preview"
            src={src}
            alt={`Uploaded image${name ? `: ${name}` : ""}`}
            draggable={false}
            onLoad={(e) => setDims(`${e.currentTarget.naturalWidth} × ${e.currentTarget.naturalHeight}`)}
            onError={(e) => {
              // an expired signature: switch to the freshest URL the server sent
              if (url && e.currentTarget.src !== url) {
                shown.current = { key, url };
                e.currentTarget.src = url;
              }
            }}
          />
        ) : (
          <div className="dropzone-text">
            {canEdit ? (
              <>
                <strong>Drop an image here</strong>
                <span className="muted small">PNG, JPEG or WebP</span>
              </>
            ) : (
              <span className="muted small">No image yet</span>
            )}
          </div>
        )}
        {src && dims && <span className="image-dims small">{dims}</span>}
      </div>
      <input
        ref={file}
        id={inputId}
        className="sr-only"
        type="file"
        accept={ACCEPT}
        tabIndex={-1}
        onChange={(e) => {
          if (e.target.files[0]) upload(e.target.files[0]);
          e.target.value = "";
        }}
      />
      <div className="node-actions">
        {canEdit && (
        <button className="btn btn-secondary btn-sm nodrag" type="button" disabled={uploading} onClick={() => file.current.click()}>
          {uploading ? "Uploading…" : key ? "Replace image" : "Upload image"}
        </button>
        )}
        {src && (
          <a className="btn btn-ghost btn-sm nodrag download" href={url} download={name || "image"} aria-label="Download image">
            Download
          </a>
        )}
      </div>
      <p className="node-error" role="alert" hidden={!error}>
        {error}
      </p>
    </NodeCard>
  );
}

export const ImageNode = memo(ImageNodeView);
