// Conflict recovery for node data written with `if_version` (docs/protocol.md,
// "Concurrent edits"): a stale write is refused with 409 `conflict` and the node as it
// is now. The pending change is rebased onto that node:
//   - keys nobody else changed since our base (someone only moved the node, or edited
//     other keys) are simply resent against the current version;
//   - a key someone else changed to the same value as ours is already done;
//   - settings (any key but text) are last-writer-wins: resent, ours on top;
//   - text (`prompt`) someone else changed differently is a conflict: both versions
//     go to the user, nothing is lost silently.
// Pure, unit-tested.

/** Data keys whose concurrent edits are shown to the user rather than overwritten. */
export const TEXT_KEYS = new Set(["prompt"]);

const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Rebase the data write `from → to` onto `current` (the node as the server has it now).
 * Returns `{resend: {data}, version}` (possibly with nothing left to send: `resend` null)
 * or `{conflict: {key, mine, theirs, base, version}}`.
 */
export function rebaseData(from, to, current) {
  const theirs = current?.data || {};
  const resend = {};
  for (const [key, mine] of Object.entries(to)) {
    const now = theirs[key];
    if (same(now, mine)) continue; // they wrote what we meant: done
    if (TEXT_KEYS.has(key) && !same(now, from?.[key])) {
      return { conflict: { key, mine, theirs: now ?? "", base: from?.[key] ?? "", version: current.version } };
    }
    resend[key] = mine;
  }
  return { resend: Object.keys(resend).length ? { data: resend } : null, version: current?.version ?? null };
}

/** Two texts kept side by side, for "Keep both": ours first, theirs after a blank line. */
export function keepBoth(mine, theirs) {
  if (!theirs || mine.includes(theirs)) return mine;
  if (!mine || theirs.includes(mine)) return theirs;
  return `${mine}\n\n${theirs}`;
}

/** The error a data write throws when the user must choose: carries both versions. */
export class EditConflict extends Error {
  constructor(conflict, current) {
    super("Someone else changed this text at the same time: choose what to keep.");
    this.name = "EditConflict";
    this.code = "edit_conflict";
    this.conflict = conflict;
    this.current = current;
  }
}
