// The canvasflow single-page app: hash routes for log in, projects and the canvas.
import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import { CanvasPage } from "../canvas/CanvasPage.jsx";
import { api, setUnauthenticatedHandler } from "./api.js";
import { AuthView } from "./AuthView.jsx";
import { ProjectsView } from "./ProjectsView.jsx";
import { Toasts, toast } from "./toasts.jsx";

const AFTER_LOGIN = "cf-after-login";
const INVITE = "cf-invite";

/** An invitation link's token (`/?invite=…`), kept through a log in or sign up. */
function takeInviteFromUrl() {
  const params = new URLSearchParams(location.search);
  const token = params.get("invite");
  if (!token) return;
  sessionStorage.setItem(INVITE, token);
  params.delete("invite");
  const rest = params.toString();
  history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
}
takeInviteFromUrl();
const CANVAS_ROUTE = /^#\/p\/([0-9a-f-]{36})$/i;

/** What every view may use: the user, navigation, the top bar's middle slot. */
export const AppContext = createContext(null);
export const useApp = () => useContext(AppContext);

const currentHash = () => location.hash || "#/";

export function App() {
  const [user, setUser] = useState(undefined); // undefined: not asked yet
  const [hash, setHash] = useState(currentHash);
  const [topCenter, setTopCenter] = useState(null);
  const mainRef = useRef(null);
  const firstRoute = useRef(true);
  const signingIn = useRef(false);

  const navigate = useCallback((to) => {
    if (location.hash === to) setHash(currentHash());
    else location.hash = to;
  }, []);

  useEffect(() => {
    const onHash = () => setHash(currentHash());
    window.addEventListener("hashchange", onHash);
    api.me().then(setUser, () => setUser(null));
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  const sessionEnded = useCallback(() => {
    setUser((known) => {
      if (known) {
        toast("Your session ended. Log in again.", "error", { key: "session" });
        location.hash = "#/login";
      }
      return null;
    });
  }, []);
  useEffect(() => setUnauthenticatedHandler(sessionEnded), [sessionEnded]);

  // an invitation waiting for a signed-in user: accept it and open its project
  useEffect(() => {
    const token = user && sessionStorage.getItem(INVITE);
    if (!token) return;
    sessionStorage.removeItem(INVITE);
    api.acceptInvite(token).then(
      (answer) => {
        toast(`You joined “${answer.project.name}” as ${answer.member.role}.`, "info", { key: "invite" });
        navigate(`#/p/${answer.project.id}`);
      },
      (err) => {
        const message =
          err.code === "invite_expired"
            ? "That invitation link was used, revoked, or has expired: ask for a new one."
            : err.code === "already_member"
              ? "You are already a member of that project."
              : `Could not accept the invitation: ${err.message}`;
        toast(message, "error", { key: "invite" });
      },
    );
  }, [user, navigate]);

  const authRoute = hash === "#/login" || hash === "#/signup";
  const canvasMatch = hash.match(CANVAS_ROUTE);
  useEffect(() => {
    if (user === null && !authRoute) sessionStorage.setItem(AFTER_LOGIN, hash);
    if (user && authRoute && !signingIn.current) navigate("#/");
    if (!authRoute) signingIn.current = false;
  }, [user, authRoute, hash, navigate]);

  // after a navigation (not the first load) the new page is announced from <main>
  useEffect(() => {
    if (user === undefined) return;
    if (firstRoute.current) firstRoute.current = false;
    else mainRef.current?.focus({ preventScroll: true });
  }, [hash, user]);

  useEffect(() => {
    document.body.classList.toggle("on-canvas", !!(user && canvasMatch));
    if (!canvasMatch) document.title = "canvasflow";
  }, [user, canvasMatch]);

  const signedIn = (session) => {
    signingIn.current = true;
    setUser(session.user);
    const next = sessionStorage.getItem(AFTER_LOGIN) || "#/";
    sessionStorage.removeItem(AFTER_LOGIN);
    navigate(CANVAS_ROUTE.test(next) ? next : "#/");
  };

  const logOut = async () => {
    try {
      await api.logout();
    } catch (err) {
      if (err.status !== 401) toast(err.message, "error");
    }
    setUser(null);
    navigate("#/login");
  };

  let page = null;
  if (user === null) page = <AuthView key={hash} mode={hash === "#/signup" ? "signup" : "login"} onSignedIn={signedIn} />;
  else if (user && canvasMatch) page = <CanvasPage key={canvasMatch[1]} projectId={canvasMatch[1]} />;
  else if (user && !authRoute) page = <ProjectsView />;

  const context = { user, navigate, sessionEnded, topCenter };
  return (
    <AppContext.Provider value={context}>
      <a className="skip-link" href="#main" onClick={(e) => { e.preventDefault(); mainRef.current?.focus(); }}>
        Skip to content
      </a>
      <header className="topbar" id="topbar">
        <a className="brand" href="#/" aria-label="canvasflow home">
          <svg className="brand-mark" viewBox="0 0 24 24" aria-hidden="true">
            <circle cx="5" cy="6" r="3" />
            <circle cx="5" cy="18" r="3" />
            <rect x="14" y="8" width="8" height="8" rx="2" />
            <path d="M8 6c4 0 3 6 6 6M8 18c4 0 3-6 6-6" fill="none" strokeWidth="1.6" />
          </svg>
          <span>canvasflow</span>
        </a>
        <div className="topbar-center" id="topbar-center" ref={setTopCenter} />
        <div className="topbar-right" id="topbar-right">
          {user && (
            <>
              <span className="user-email" title={user.email}>
                {user.email}
              </span>
              <button className="btn btn-ghost" id="logout" type="button" onClick={logOut}>
                Log out
              </button>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1} ref={mainRef}>
        {page}
      </main>
      <Toasts />
    </AppContext.Provider>
  );
}
