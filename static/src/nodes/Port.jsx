// One typed port: a React Flow handle that lights up when the connection being drawn
// (by drag, click or keyboard) could end here, and dims when it could not. Enter or
// Space on a focused port acts like a click: React Flow's click-to-connect.
import { Handle, Position, useConnection, useStore } from "@xyflow/react";
import { useCommands } from "../canvas/context.js";

const clickStartOf = (s) => s.connectionClickStartHandle;
const fromOf = (c) => (c.inProgress ? c.fromHandle : null);

export function Port({ nodeId, nodeTitle, port, type }) {
  const commands = useCommands();
  const dragFrom = useConnection(fromOf);
  const clickFrom = useStore(clickStartOf);
  const from = dragFrom || clickFrom;
  const isSource = type === "source";
  let state = "";
  if (from) {
    if (from.nodeId === nodeId && (from.id || null) === port.id && from.type === type) state = "from";
    else if (from.type === type) state = "incompatible";
    else {
      const link = from.type === "source"
        ? { source: from.nodeId, sourceHandle: from.id, target: nodeId, targetHandle: port.id }
        : { source: nodeId, sourceHandle: port.id, target: from.nodeId, targetHandle: from.id };
      state = commands.refuse(link) ? "incompatible" : "compatible";
    }
  }
  const label = isSource ? `Connect from this ${nodeTitle} node` : `Connect into ${port.label} of this ${nodeTitle} node`;
  return (
    <Handle
      type={type}
      id={port.id}
      position={isSource ? Position.Right : Position.Left}
      className={`handle handle-${isSource ? "out" : "in"} port-kind-${port.kind}${state ? ` port-${state}` : ""}`}
      data-port={port.id}
      tabIndex={0}
      role="button"
      aria-label={label}
      title={isSource ? `Output (${port.label.toLowerCase()}): drag to an input that takes it` : `${port.label}: takes ${port.kind}${port.max > 1 ? `, up to ${port.max}` : ""}`}
      onKeyDown={(event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          event.stopPropagation();
          event.currentTarget.click();
        }
      }}
    />
  );
}
