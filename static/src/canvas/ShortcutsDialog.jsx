// `?`: every shortcut and gesture of the canvas, from the one table in shortcuts.js.
import { useEffect, useRef } from "react";
import { GESTURES, SHORTCUTS } from "./shortcuts.js";

export function ShortcutsDialog({ onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    ref.current.showModal();
    ref.current.querySelector("button").focus();
  }, []);
  return (
    <dialog ref={ref} className="dialog shortcuts-dialog" aria-labelledby="shortcuts-title" onClose={onClose}>
      <form method="dialog">
        <div className="dialog-head">
          <h2 id="shortcuts-title" className="dialog-title">
            Keyboard shortcuts
          </h2>
          <button className="icon-btn" type="submit" aria-label="Close">
            ×
          </button>
        </div>
        <table className="shortcuts">
          <tbody>
            {SHORTCUTS.map(([command, keys, what]) => (
              <tr key={command}>
                <th scope="row">
                  <kbd>{keys}</kbd>
                </th>
                <td>{what}</td>
              </tr>
            ))}
            {GESTURES.map(([gesture, what]) => (
              <tr key={gesture}>
                <th scope="row">{gesture}</th>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </form>
    </dialog>
  );
}
