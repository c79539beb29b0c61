// Sign up and log in.
import { api } from "./api.js";
import { h, mount } from "./dom.js";

/** Render the log-in (or sign-up) form into `root`. */
export function renderAuth(root, app, mode) {
  const signup = mode === "signup";
  const error = h("p", { class: "form-error", id: "auth-error", role: "alert", hidden: true });
  const email = h("input", {
    id: "auth-email",
    name: "email",
    type: "email",
    autocomplete: "email",
    required: true,
    placeholder: "you@example.com",
  });
  const password = h("input", {
    id: "auth-password",
    name: "password",
    type: "password",
    autocomplete: signup ? "new-password" : "current-password",
    required: true,
    minLength: signup ? 8 : null,
    placeholder: signup ? "At least 8 characters" : "",
  });
  const submit = h(
    "button",
    { class: "btn btn-primary btn-block", type: "submit", id: "auth-submit" },
    signup ? "Create account" : "Log in",
  );

  async function onSubmit(event) {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const call = signup ? api.signup : api.login;
      const session = await call(email.value.trim(), password.value);
      app.setUser(session.user);
      const next = sessionStorage.getItem("cf-after-login") || "#/";
      sessionStorage.removeItem("cf-after-login");
      app.navigate(next.startsWith("#/p/") ? next : "#/");
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      submit.disabled = false;
      (err.code === "email_taken" ? email : password).focus();
    }
  }

  mount(
    root,
    h(
      "section",
      { class: "auth-page" },
      h(
        "div",
        { class: "auth-card" },
        h("h1", { class: "auth-title" }, signup ? "Create your account" : "Welcome back"),
        h(
          "p",
          { class: "muted" },
          signup
            ? "Sketch prompts and images, wire them into videos."
            : "Log in to open your canvases.",
        ),
        h(
          "form",
          { class: "form", onsubmit: onSubmit, "aria-describedby": "auth-error", novalidate: false },
          h("div", { class: "field" }, h("label", { for: "auth-email" }, "Email"), email),
          h("div", { class: "field" }, h("label", { for: "auth-password" }, "Password"), password),
          error,
          submit,
        ),
        h(
          "p",
          { class: "auth-switch muted" },
          signup ? "Already have an account? " : "New to canvasflow? ",
          h("a", { href: signup ? "#/login" : "#/signup" }, signup ? "Log in" : "Create an account"),
        ),
      ),
    ),
  );
  email.focus();
  return { dispose() {} };
}
