// A connection: a curve from an output to an input; selected, it offers a delete button.
import { BaseEdge, EdgeLabelRenderer, getBezierPath } from "@xyflow/react";
import { useCommands } from "./context.js";

export function ConnectionEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, selected }) {
  const commands = useCommands();
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  return (
    <>
      <BaseEdge id={id} path={path} className="edge-line" interactionWidth={18} />
      {selected && (
        <EdgeLabelRenderer>
          <button
            type="button"
            className="edge-delete nodrag nopan"
            id="delete-connection"
            aria-label="Delete selected connection"
            title="Delete connection (Delete key)"
            style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
            onClick={() => commands.deleteElements([], [id])}
          >
            ×
          </button>
        </EdgeLabelRenderer>
      )}
    </>
  );
}

export const edgeTypes = { connection: ConnectionEdge };
