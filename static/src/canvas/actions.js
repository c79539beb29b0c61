// Carry out an undo-stack action (undo.js) as server changes, through the live store's
// overlay so this tab shows each part at once and every other tab through its event.
// Data is written with `if_version` (the version the edit was made against); a stale
// write is rebased onto the node the 409 answer holds (conflict.js).
import { EditConflict, rebaseData } from "./conflict.js";

const GONE = new Set(["node_not_found", "connection_not_found"]);

/** A write of one entity: shown at once, settled by the reply, rolled back on failure. */
export async function write(store, kind, id, change, call) {
  const token = store.send(kind, id, change);
  try {
    const reply = await call();
    store.settle(token, reply);
    return reply;
  } catch (err) {
    // deleting what is already gone is done, not failed
    if (change.removed && GONE.has(err.code)) {
      store.settle(token, null);
      return null;
    }
    store.fail(token);
    throw err;
  }
}

/** Create a node or connection: the reply names it, and the store shows it until its event. */
export async function create(store, kind, call) {
  const token = store.send(kind, null);
  const reply = await call();
  store.settle(token, reply);
  return reply;
}

/** Nodes and links as the paste endpoint takes them (refs are the ids the action knows). */
export function pasteBody(action) {
  return {
    nodes: action.nodes.map((n) => ({ ref: n.id, type: n.type, x: n.x, y: n.y, data: n.data || {} })),
    connections: action.connections.map((c) => ({
      ref: c.id,
      source: c.source,
      target: c.target,
      ...(c.port ? { target_port: c.port } : {}),
    })),
  };
}

/**
 * Run a planned action; resolves to the ids it gave re-created things (old → new).
 * `ctx` is {api, store, projectId}.
 */
export async function runAction(action, { api, store, projectId }) {
  const ids = new Map();
  switch (action.type) {
    case "create": {
      if (action.nodes.length === 0) {
        // links alone: the plain endpoint
        for (const c of action.connections) {
          const made = await create(store, "connection", () => api.createConnection(projectId, c.source, c.target, c.port));
          ids.set(c.id, made.id);
        }
        return ids;
      }
      const body = pasteBody(action);
      const tokens = body.nodes.map(() => store.send("node", null));
      const answer = await api.paste(projectId, body.nodes, body.connections);
      answer.nodes.forEach((node, i) => store.settle(tokens[i] || store.send("node", null), node));
      for (const connection of answer.connections) store.settle(store.send("connection", null), connection);
      for (const [ref, id] of Object.entries(answer.refs || {})) ids.set(ref, id);
      return ids;
    }
    case "remove": {
      const removed = new Set(action.nodes.map((n) => n.id));
      const links = action.connections.filter((c) => !removed.has(c.source) && !removed.has(c.target));
      await Promise.all(links.map((c) => write(store, "connection", c.id, { removed: true }, () => api.deleteConnection(c.id))));
      await Promise.all(action.nodes.map((n) => write(store, "node", n.id, { removed: true }, () => api.deleteNode(n.id))));
      return ids;
    }
    case "move":
      await Promise.all(
        action.moves.map((m) => write(store, "node", m.id, { patch: m.to }, () => api.updateNode(m.id, { x: m.to.x, y: m.to.y }))),
      );
      return ids;
    case "data":
      if (Object.keys(action.to).length) await writeData(store, api, action);
      return ids;
    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

/**
 * Write `action.to` into a node's data against the version it was made from
 * (`action.ifVersion`, else the version shown now). On a 409 conflict the node in the
 * answer becomes this tab's copy and the change is rebased onto it: resent when nobody
 * else touched its keys, else an EditConflict carrying both texts is thrown.
 */
export async function writeData(store, api, action, tries = 3) {
  let version = action.ifVersion ?? store.getView().nodes.get(action.id)?.version ?? null;
  let data = action.to;
  for (let attempt = 0; ; attempt++) {
    const body = version == null ? { data } : { data, if_version: version };
    try {
      return await write(store, "node", action.id, { patch: { data } }, () => api.updateNode(action.id, body));
    } catch (err) {
      const current = err.code === "conflict" ? err.details?.current : null;
      if (!current || attempt + 1 >= tries) throw err;
      // the server's node as it is now: shown at once, whatever we decide next
      store.settle(store.send("node", action.id), current);
      const rebased = rebaseData(action.from, data, current);
      if (rebased.conflict) throw new EditConflict(rebased.conflict, current);
      if (!rebased.resend) return current;
      data = rebased.resend.data;
      version = rebased.version;
    }
  }
}
