// A modal confirmation on <dialog> (focus trapping and Escape for free), as a promise.
import { useEffect, useRef } from "react";
import { createRoot } from "react-dom/client";

function ConfirmDialog({ title, message, confirmLabel, danger, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    dialog.querySelector('button[value="ok"]').focus();
  }, []);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title" onClose={(e) => onClose(e.currentTarget.returnValue === "ok")}>
      <form method="dialog">
        <h2 id="dialog-title" className="dialog-title">
          {title}
        </h2>
        <p className="muted">{message}</p>
        <div className="dialog-actions">
          <button className="btn btn-ghost" value="cancel" type="submit">
            Cancel
          </button>
          <button className={`btn ${danger ? "btn-danger" : "btn-primary"}`} value="ok" type="submit">
            {confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** Ask the user to confirm; resolves to true when they do. */
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    const host = document.createElement("div");
    document.body.append(host);
    const root = createRoot(host);
    const close = (ok) => {
      resolve(ok);
      root.unmount();
      host.remove();
    };
    root.render(<ConfirmDialog title={title} message={message} confirmLabel={confirmLabel} danger={danger} onClose={close} />);
  });
}
