// The take strip of a generating node: every output it made, newest first. Click a take
// to make it the node's active one (what it shows and feeds downstream), compare any take
// with the active one side by side, download it, or delete it (its media goes too).
import { useState } from "react";
import { useCommands } from "../canvas/context.js";
import { SNAPSHOT_TAKES, stripState, takeFileName } from "./takes.js";

function Media({ take, label }) {
  if (!take?.media_url) return <p className="muted small">No media.</p>;
  return take.mime_type?.startsWith("video/") ? (
    <video className="take-media nodrag" src={take.media_url} controls muted preload="metadata" playsInline aria-label={label} />
  ) : (
    <img className="take-media" src={take.media_url} alt={label} draggable={false} />
  );
}

export function TakeStrip({ node, takes, activeTakeId, canEdit }) {
  const commands = useCommands();
  const [compareId, setCompareId] = useState(null);
  const [busy, setBusy] = useState(null);
  const [allLoaded, setAllLoaded] = useState(false);
  const strip = stripState(node.id, new Map(takes.map((t) => [t.id, t])), activeTakeId, compareId);
  if (!strip.count) return null;
  const numberOf = (take) => strip.numbers.get(take.id);

  async function run(what, fn) {
    setBusy(what);
    try {
      await fn();
      return true;
    } catch (err) {
      commands.notify(err.message, "error");
      return false;
    } finally {
      setBusy(null);
    }
  }

  return (
    <section className="take-strip-wrap" aria-label="Takes">
      <div className="take-strip-head small">
        <span className="take-count">
          {strip.count} take{strip.count === 1 ? "" : "s"}
        </span>
        {strip.active && (
          <a className="btn btn-ghost btn-sm nodrag take-download" href={strip.active.media_url} download={takeFileName(strip.active, numberOf(strip.active))}>
            Download take {numberOf(strip.active)}
          </a>
        )}
      </div>
      <ul className="take-strip nodrag nowheel" role="list">
        {strip.items.map(({ take, number: n, active, compared, label }) => {
          return (
            <li key={take.id} className={`take${active ? " take-active" : ""}${compared ? " take-compared" : ""}`} data-take-id={take.id}>
              <button
                type="button"
                className="take-pick"
                aria-pressed={active}
                aria-label={`${active ? "Showing" : canEdit ? "Use" : "Take"} ${label}`}
                title={canEdit && !active ? "Make this the node's take" : label}
                disabled={!canEdit || active || busy !== null}
                onClick={() => run("pick", () => commands.pickTake(node.id, take.id))}
              >
                {n}
              </button>
              {!active && (
                <button
                  type="button"
                  className="take-compare-btn"
                  aria-pressed={compared}
                  aria-label={`Compare take ${n} with the active take`}
                  title="Compare with the active take"
                  onClick={() => setCompareId(compared ? null : take.id)}
                >
                  ⇄
                </button>
              )}
              {canEdit && (
                <button
                  type="button"
                  className="take-delete"
                  aria-label={`Delete take ${n}`}
                  title="Delete this take and its media"
                  disabled={busy !== null}
                  onClick={() => run("delete", () => commands.deleteTake(node.id, take.id))}
                >
                  ×
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {!allLoaded && strip.count >= SNAPSHOT_TAKES && (
        <button type="button" className="btn btn-ghost btn-sm nodrag older-takes" disabled={busy !== null} onClick={() => run("load", () => commands.loadTakes(node.id)).then((ok) => ok && setAllLoaded(true))}>
          Show older takes
        </button>
      )}
      {strip.compared && (
        <div className="take-compare" role="group" aria-label="Compare takes">
          <figure>
            <Media take={strip.active} label={`Active take ${strip.active ? numberOf(strip.active) : ""}`} />
            <figcaption className="small">Active{strip.active ? ` · take ${numberOf(strip.active)}` : ""}</figcaption>
          </figure>
          <figure>
            <Media take={strip.compared} label={`Take ${numberOf(strip.compared)}`} />
            <figcaption className="small">Take {numberOf(strip.compared)}{strip.compared.seed != null ? ` · seed ${strip.compared.seed}` : ""}</figcaption>
          </figure>
          <div className="take-compare-actions">
            {canEdit && (
              <button type="button" className="btn btn-secondary btn-sm nodrag" onClick={() => run("pick", () => commands.pickTake(node.id, strip.compared.id)).then(() => setCompareId(null))}>
                Use take {numberOf(strip.compared)}
              </button>
            )}
            <button type="button" className="btn btn-ghost btn-sm nodrag" onClick={() => setCompareId(null)}>
              Close comparison
            </button>
          </div>
        </div>
      )}
    </section>
  );
}
