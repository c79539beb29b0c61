// The live link between a canvas and the server. Until the websocket client lands this
// loads the project's state over REST once.
import { api } from "./api.js";

/** Keep `store` equal to the server's state of `projectId`; returns `{close}`. */
export function openLive(projectId, store, { onStatus }) {
  let closed = false;
  onStatus("connecting");
  (async () => {
    const [nodes, connections] = await Promise.all([api.listNodes(projectId), api.listConnections(projectId)]);
    if (closed) return;
    store.applySnapshot({ nodes, connections, jobs: [] });
    onStatus("offline");
  })().catch(() => onStatus("offline"));
  return {
    close() {
      closed = true;
    },
  };
}
