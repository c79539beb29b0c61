// The canvasflow single-page app: hash routes for log in, projects and the canvas.
import { api, setUnauthenticatedHandler } from "./api.js";
import { renderAuth } from "./auth-view.js";
import { h, mount } from "./dom.js";
import { renderProjects } from "./projects-view.js";
import { openCanvas } from "./canvas-view.js";
import { toast } from "./toast.js";

const main = document.getElementById("main");
const topRight = document.getElementById("topbar-right");
const topCenter = document.getElementById("topbar-center");

/** Shared app state: the signed-in user and the view being shown. */
const app = {
  user: null,
  view: null, // { dispose() } of the current view
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  setUser(user) {
    this.user = user;
    renderUserMenu();
  },
  /** The session is over (revoked or expired): back to the log-in form. */
  sessionEnded() {
    if (!this.user) return;
    this.setUser(null);
    toast("Your session ended. Log in again.", "error");
    this.navigate("#/login");
  },
};

function renderUserMenu() {
  if (!app.user) {
    mount(topRight);
    return;
  }
  mount(
    topRight,
    h("span", { class: "user-email", title: app.user.email, text: app.user.email }),
    h("button", { class: "btn btn-ghost", id: "logout", type: "button", onclick: logOut }, "Log out"),
  );
}

async function logOut() {
  try {
    await api.logout();
  } catch (err) {
    if (err.status !== 401) toast(err.message, "error");
  }
  app.setUser(null);
  app.navigate("#/login");
}

function disposeView() {
  if (app.view) app.view.dispose();
  app.view = null;
  mount(topCenter);
  document.body.classList.remove("on-canvas");
  document.title = "canvasflow";
}

async function route() {
  const hash = location.hash || "#/";
  disposeView();
  if (app.user === null) {
    try {
      app.setUser(await api.me());
    } catch {
      app.setUser(null);
    }
  }
  const authRoute = hash === "#/login" || hash === "#/signup";
  if (!app.user) {
    if (!authRoute) sessionStorage.setItem("cf-after-login", hash);
    app.view = renderAuth(main, app, hash === "#/signup" ? "signup" : "login");
    return;
  }
  if (authRoute) {
    app.navigate("#/");
    return;
  }
  const canvasMatch = hash.match(/^#\/p\/([0-9a-f-]{36})$/i);
  if (canvasMatch) {
    document.body.classList.add("on-canvas");
    app.view = openCanvas(main, topCenter, app, canvasMatch[1]);
  } else {
    app.view = renderProjects(main, app);
  }
  main.focus({ preventScroll: true });
}

setUnauthenticatedHandler(() => app.sessionEnded());

window.addEventListener("hashchange", route);
route();
