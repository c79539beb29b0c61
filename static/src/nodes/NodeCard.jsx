// The card every node type draws in: a header (icon, title, status, delete, outputs),
// one row per input port, the type's own body, and a slot below it for what other
// features add to a node (takes, progress, cost, presence).
import { portsOf } from "../canvas/ports.js";
import { useCommands } from "../canvas/context.js";
import { NODE_SPECS } from "./specs.js";
import { Port } from "./Port.jsx";
import { PresenceMarkers } from "./PresenceMarkers.jsx";

const ICONS = {
  prompt: "M4 5h16M4 10h16M4 15h10",
  image: "M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9.5a1.5 1.5 0 1 0 0-.01",
  image_gen: "M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M12 2l1 2 2 1-2 1-1 2-1-2-2-1 2-1z",
  video: "M3 6h13v12H3zM16 10l5-3v10l-5-3",
};

export function NodeIcon({ type }) {
  return (
    <svg className="node-icon" viewBox="0 0 24 24" aria-hidden="true">
      <path d={ICONS[type] || ICONS.prompt} />
    </svg>
  );
}

/**
 * `inputs` maps a port id to what the row shows (text, or {text, missing}); `badge`
 * sits in the header; `extras` is the slot under the body.
 */
export function NodeCard({ node, selected, badge = null, inputs = {}, extras = null, className = "", status, canEdit = true, presence = null, children }) {
  const commands = useCommands();
  const spec = NODE_SPECS[node.type] || { title: node.type };
  const title = spec.title.toLowerCase();
  const ports = portsOf(node.type);
  const titleId = `node-title-${node.id}`;
  return (
    <article
      className={`node node-${node.type}${selected ? " selected" : ""} ${className}`}
      data-node-id={node.id}
      data-type={node.type}
      data-status={status}
      aria-labelledby={titleId}
    >
      <header className="node-head">
        <NodeIcon type={node.type} />
        <h3 className="node-title" id={titleId}>
          {spec.title}
        </h3>
        <PresenceMarkers users={presence} />
        {badge}
        {canEdit && (
        <button
          className="icon-btn node-delete nodrag"
          type="button"
          aria-label={`Delete ${title} node`}
          title="Delete node (Delete key)"
          onClick={() => commands.deleteElements([node.id])}
        >
          <svg viewBox="0 0 24 24" aria-hidden="true">
            <path d="M6 6l12 12M18 6L6 18" />
          </svg>
        </button>
        )}
        {ports.outputs.map((port) => (
          <Port key={port.id} nodeId={node.id} nodeTitle={title} port={port} type="source" />
        ))}
      </header>
      {ports.inputs.length > 0 && (
        <dl className="inputs">
          {ports.inputs.map((port) => {
            const value = inputs[port.id];
            const text = typeof value === "object" && value ? value.text : value;
            const missing = typeof value === "object" && value ? value.missing : !value;
            return (
              <div className="port-row" key={port.id} data-port={port.id}>
                <Port nodeId={node.id} nodeTitle={title} port={port} type="target" />
                <dt>{port.label}</dt>
                <dd className={`input-value${missing ? " missing" : ""}`}>{text || "—"}</dd>
              </div>
            );
          })}
        </dl>
      )}
      <div className="node-body">{children}</div>
      {extras && <div className="node-extras">{extras}</div>}
    </article>
  );
}
