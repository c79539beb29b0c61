// Typed ports: what each node type gives out and takes in, and the one rule that says
// whether a connection may be made. Pure: the canvas asks it while a connection is
// dragged (only compatible handles light up) and before it sends one to the server.
//
// A port is {id, kind, label, max}. Kinds: "text", "image", "video". Inputs say how
// many connections they take (`max`). Handles in React Flow carry the port id.

/** Every port the typed-ports server declares (docs: ARCHITECTURE "Takes, inputs and budgets"). */
export const TYPED_PORTS = {
  prompt: { inputs: [], outputs: [{ id: "out", kind: "text", label: "Text" }] },
  image: { inputs: [], outputs: [{ id: "out", kind: "image", label: "Image" }] },
  image_gen: {
    inputs: [{ id: "prompt", kind: "text", label: "Prompt", max: 1 }],
    outputs: [{ id: "out", kind: "image", label: "Image" }],
  },
  video: {
    inputs: [
      { id: "prompt", kind: "text", label: "Prompt", max: 1 },
      { id: "first_frame", kind: "image", label: "First frame", max: 1 },
      { id: "last_frame", kind: "image", label: "Last frame", max: 1 },
      { id: "references", kind: "image", label: "References", max: 3 },
      { id: "extend", kind: "video", label: "Extend", max: 1 },
    ],
    outputs: [{ id: "out", kind: "video", label: "Video" }],
  },
};

/**
 * The port table in force: TYPED_PORTS until `GET /api/node-types` answers, then the
 * server's own (the one it checks links with), through setPortTable.
 */
export const PORTS = structuredClone(TYPED_PORTS);

/** The canvas's table from the server's `{node_types: [{type, output, inputs}]}`. */
export function portTableFrom(answer) {
  const table = {};
  for (const t of answer?.node_types || []) {
    table[t.type] = {
      inputs: (t.inputs || []).map((p) => ({ id: p.name, kind: p.kind, label: p.label || p.name, max: p.max_links })),
      outputs: t.output ? [{ id: "out", kind: t.output, label: t.output[0].toUpperCase() + t.output.slice(1) }] : [],
    };
  }
  return table;
}

/** Replace the table in force with the server's (see portTableFrom); returns it. */
export function setPortTable(table) {
  for (const key of Object.keys(PORTS)) delete PORTS[key];
  Object.assign(PORTS, table);
  return PORTS;
}

const NO_PORTS = { inputs: [], outputs: [] };

/** The ports of a node type (none for a type the table does not know). */
export function portsOf(type, table = PORTS) {
  return table[type] || NO_PORTS;
}

/** One input port of a node type, or null. */
export function inputPort(type, portId, table = PORTS) {
  return portsOf(type, table).inputs.find((p) => p.id === portId) || null;
}

/** One output port of a node type, or null. */
export function outputPort(type, portId, table = PORTS) {
  return portsOf(type, table).outputs.find((p) => p.id === portId) || null;
}

/** The kind a node gives out on its (first) output, or null. */
export function outputKind(type, table = PORTS) {
  return portsOf(type, table).outputs[0]?.kind || null;
}

/**
 * The input port a stored connection ends at: its `target_port` when the server keeps
 * one, else the first input of the target that takes what the source gives out.
 */
export function targetPortOf(connection, nodes, table = PORTS) {
  if (connection.target_port) return connection.target_port;
  const source = nodes.get(connection.source_id);
  const target = nodes.get(connection.target_id);
  if (!source || !target) return null;
  const kind = outputKind(source.type, table);
  return portsOf(target.type, table).inputs.find((p) => p.kind === kind)?.id || null;
}

/** Whether `to` can already reach `from` along connections (then from → to closes a cycle). */
export function wouldCycle(from, to, connections) {
  if (from === to) return true;
  const next = new Map();
  for (const c of connections) {
    if (!next.has(c.source_id)) next.set(c.source_id, []);
    next.get(c.source_id).push(c.target_id);
  }
  const seen = new Set([to]);
  const stack = [to];
  while (stack.length) {
    const id = stack.pop();
    for (const t of next.get(id) || []) {
      if (t === from) return true;
      if (!seen.has(t)) {
        seen.add(t);
        stack.push(t);
      }
    }
  }
  return false;
}

const KIND_NAMES = { text: "text", image: "an image", video: "a video" };

/**
 * Why the connection `{source, sourceHandle, target, targetHandle}` (React Flow's
 * shape) cannot be made in `graph` ({nodes: Map, connections: Map|Array}), as
 * `{code, message}`; null when it can. `ignore` names a connection id to leave out
 * (one being replaced).
 */
export function refuseConnection(connection, graph, table = PORTS) {
  const { source, target } = connection;
  const sourceHandle = connection.sourceHandle || "out";
  const targetHandle = connection.targetHandle;
  if (!source || !target) return refusal("incomplete", "Drop the connection on an input.");
  if (source === target) return refusal("self_loop", "A node cannot be connected to itself.");
  const from = graph.nodes.get(source);
  const to = graph.nodes.get(target);
  if (!from || !to) return refusal("missing", "That node is gone.");
  const out = outputPort(from.type, sourceHandle, table);
  if (!out) return refusal("no_output", `A ${from.type} node gives nothing out.`);
  const port = targetHandle ? inputPort(to.type, targetHandle, table) : null;
  if (!port) {
    const takes = portsOf(to.type, table).inputs.some((p) => p.kind === out.kind);
    return takes
      ? refusal("no_port", "Drop the connection on one of the node's inputs.")
      : refusal("kind", `A ${to.type} node takes no ${KIND_NAMES[out.kind] || out.kind} input.`);
  }
  if (port.kind !== out.kind) {
    return refusal("kind", `${port.label} takes ${KIND_NAMES[port.kind] || port.kind}, not ${KIND_NAMES[out.kind] || out.kind}.`);
  }
  const connections = [...(graph.connections.values ? graph.connections.values() : graph.connections)];
  let used = 0;
  for (const c of connections) {
    if (c.id === connection.ignore) continue;
    if (c.source_id === source && c.target_id === target) {
      return refusal("duplicate", "These two nodes are already connected.");
    }
    if (c.target_id === target && targetPortOf(c, graph.nodes, table) === port.id) used += 1;
  }
  if (used >= port.max) {
    return refusal(
      "full",
      port.max === 1
        ? `${port.label} takes one input: remove its connection first.`
        : `${port.label} takes at most ${port.max} inputs.`,
    );
  }
  if (wouldCycle(source, target, connections)) {
    return refusal("cycle", "That connection would make a loop.");
  }
  return null;
}

function refusal(code, message) {
  return { code, message };
}
