// The cost of a node's next Generate: POST /api/ai/estimate[-image] with the body
// generate would send, asked ~300 ms after the settings (`key`) last changed. Answers
// `{estimate, error}`; an answer to an older request is dropped. The prompt's text is
// not part of the cost: `key` holds whether there is one, not what it says.
import { useEffect, useRef, useState } from "react";

export const ESTIMATE_DEBOUNCE_MS = 300;

export function useEstimate(commands, nodeId, key, enabled) {
  const [state, setState] = useState({ estimate: null, error: null });
  const asked = useRef(0);
  useEffect(() => {
    if (!enabled || !commands.estimate) {
      asked.current++;
      setState((s) => (s.estimate || s.error ? { estimate: null, error: null } : s));
      return undefined;
    }
    const n = ++asked.current;
    const timer = setTimeout(() => {
      commands.estimate(nodeId).then(
        (estimate) => n === asked.current && setState({ estimate, error: null }),
        (error) => n === asked.current && setState({ estimate: null, error }),
      );
    }, ESTIMATE_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [commands, nodeId, key, enabled]);
  return state;
}
