// The take strip's state, pure: a node's takes newest first, which one is active, which
// one is being compared with it, and how a pick or a delete changes that. Deleted takes
// never come back: the strip shows only what the store holds, and the store drops a take
// on its take.deleted event (and this tab hides it as soon as the delete is sent).

/** How many takes of each node a snapshot carries (the newest); older ones are read on demand. */
export const SNAPSHOT_TAKES = 8;

/** The node's takes, newest first (newest job, then its outputs in order). */
export function takesOf(nodeId, takes, hidden = new Set()) {
  return [...takes.values()]
    .filter((t) => t.node_id === nodeId && !hidden.has(t.id))
    .sort((a, b) => (b.version ?? 0) - (a.version ?? 0) || (b.created_at || "").localeCompare(a.created_at || "") || a.index - b.index);
}

/**
 * What the strip draws: `[{take, active, compared, label}]`, plus `active` and
 * `compared` (the takes, or null). `activeId` is the node's active_take_id; `compareId`
 * the take chosen for comparison (ignored when it is the active one or gone).
 */
export function stripState(nodeId, takes, activeId, compareId = null, hidden = new Set()) {
  const list = takesOf(nodeId, takes, hidden);
  const active = list.find((t) => t.id === activeId) || null;
  const compared = compareId && compareId !== activeId ? list.find((t) => t.id === compareId) || null : null;
  const count = list.length;
  const numbers = takeNumbers(list);
  const items = list.map((take) => ({
    take,
    number: numbers.get(take.id),
    active: take.id === activeId,
    compared: compared?.id === take.id,
    label: `take ${numbers.get(take.id)}${take.seed != null ? ` (seed ${take.seed})` : ""}`,
  }));
  return { items, active, compared, count, numbers };
}

/** Take numbers in the order they were made: the first output of the first job is 1. */
export function takeNumbers(list) {
  const chronological = [...list].sort((a, b) => (a.version ?? 0) - (b.version ?? 0) || (a.created_at || "").localeCompare(b.created_at || "") || a.index - b.index);
  return new Map(chronological.map((t, i) => [t.id, i + 1]));
}

/** After deleting `takeId`: the take the server will make active (newest remaining), or null. */
export function nextActiveAfterDelete(nodeId, takes, activeId, takeId) {
  if (activeId !== takeId) return activeId;
  const rest = takesOf(nodeId, takes).filter((t) => t.id !== takeId);
  return rest[0]?.id ?? null;
}

/** A file name for downloading a take: `canvasflow-take-3.mp4`. */
export function takeFileName(take, number) {
  const ext = take.mime_type === "video/mp4" ? "mp4" : (take.mime_type || "image/png").split("/")[1] || "png";
  return `canvasflow-take-${number}.${ext}`;
}
