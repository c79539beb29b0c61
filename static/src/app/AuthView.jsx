// Sign up and log in.
import { useEffect, useRef, useState } from "react";
import { api } from "./api.js";

export function AuthView({ mode, onSignedIn }) {
  const signup = mode === "signup";
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const email = useRef(null);
  const password = useRef(null);
  useEffect(() => email.current.focus(), []);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const call = signup ? api.signup : api.login;
      onSignedIn(await call(email.current.value.trim(), password.current.value));
    } catch (err) {
      setError(err.message);
      setBusy(false);
      (err.code === "email_taken" ? email : password).current.focus();
    }
  }

  return (
    <section className="auth-page">
      <div className="auth-card">
        <h1 className="auth-title">{signup ? "Create your account" : "Welcome back"}</h1>
        <p className="muted">{signup ? "Sketch prompts and images, wire them into videos." : "Log in to open your canvases."}</p>
        <form className="form" onSubmit={submit} aria-describedby="auth-error">
          <div className="field">
            <label htmlFor="auth-email">Email</label>
            <input ref={email} id="auth-email" name="email" type="email" autoComplete="email" required placeholder="you@example.com" />
          </div>
          <div className="field">
            <label htmlFor="auth-password">Password</label>
            <input
              ref={password}
              id="auth-password"
              name="password"
              type="password"
              autoComplete={signup ? "new-password" : "current-password"}
              required
              minLength={signup ? 8 : undefined}
              placeholder={signup ? "At least 8 characters" : ""}
            />
          </div>
          <p className="form-error" id="auth-error" role="alert" hidden={!error}>
            {error}
          </p>
          <button className="btn btn-primary btn-block" type="submit" id="auth-submit" disabled={busy}>
            {signup ? "Create account" : "Log in"}
          </button>
        </form>
        <p className="auth-switch muted">
          {signup ? "Already have an account? " : "New to canvasflow? "}
          <a href={signup ? "#/login" : "#/signup"}>{signup ? "Log in" : "Create an account"}</a>
        </p>
      </div>
    </section>
  );
}
