// The live link between a canvas and the server, through the websocket client
// (/cf-client.js): it reconnects with backoff, resumes with `since`, fills gaps, and
// hands every applied snapshot and event to the live store. The subscription asks for
// presence (who else is here); `sendPresence` tells the others about this tab.
import { CanvasflowClient } from "../../cf-client.js";

/** Reconnect attempts in a row after which the indicator says "offline". */
const OFFLINE_AFTER_ATTEMPTS = 3;

/**
 * Keep `store` equal to the server's state of `projectId`.
 * `onStatus(state)` gets "connecting", "live", "reconnecting" or "offline";
 * `onEnded(reason)` once: "deleted", "not_found", "revoked" (this user was removed) or
 * "unauthenticated"; `onRefused(error)` for an action the server refused without ending
 * anything (`forbidden_role`); `onResubscribed()` after each snapshot or resume, when the
 * server holds nothing of this tab's presence. Returns `{close, sendPresence(fields)}`.
 */
export function openLive(projectId, store, { onStatus, onEnded, onRefused = () => {}, onResubscribed = () => {} }) {
  let failures = 0;
  let revoked = false;
  let status = null;
  let ended = false;
  const show = (next) => {
    if (next !== status) onStatus((status = next));
  };
  const end = (reason) => {
    if (ended) return;
    ended = true;
    onEnded(reason);
  };
  const client = new CanvasflowClient({
    onStatus(clientStatus) {
      if (clientStatus === "live") {
        failures = 0;
        show("live");
      } else if (clientStatus === "reconnecting") {
        failures += 1;
        show(!navigator.onLine || failures > OFFLINE_AFTER_ATTEMPTS ? "offline" : "reconnecting");
      } else if (clientStatus === "connecting") {
        show(navigator.onLine ? "connecting" : "offline");
      } else if (clientStatus === "unauthenticated") {
        show("offline");
        end("unauthenticated");
      } else if (clientStatus === "forbidden") {
        show("offline");
      }
    },
  });
  const subscription = client.subscribe(projectId, {
    onChange(state, reason, message) {
      if (reason === "ended") {
        // the subscription ends after project.deleted, or after an error about it
        end(state.deleted ? "deleted" : revoked ? "revoked" : "not_found");
        return;
      }
      store.onServer(reason, message);
      if (reason === "snapshot" || reason === "subscribed") onResubscribed();
    },
    onError(error) {
      if (error.code === "access_revoked") {
        revoked = true;
        end("revoked");
      } else if (error.code === "project_not_found") end("not_found");
      else if (error.code === "forbidden_role") onRefused(error);
    },
  }, { presence: true });
  store.attach(subscription.state);
  // the browser knows before the socket does: say so at once
  const offline = () => show("offline");
  const online = () => show(client.ws && client.ws.readyState === 1 ? "live" : "reconnecting");
  window.addEventListener("offline", offline);
  window.addEventListener("online", online);
  return {
    sendPresence: (fields) => client.sendPresence(projectId, fields),
    close() {
      ended = true;
      window.removeEventListener("offline", offline);
      window.removeEventListener("online", online);
      subscription.unsubscribe();
      client.close();
    },
  };
}
