"""Accounts and sessions: sign up, log in, log out, me, cookies, CSRF and rate limits."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from db.changes import Store
from server.auth import hash_password, verify_password
from tests.support.accounts import Account, sign_up
from tests.support.api import assert_error, dump
from tests.support.servers import ServerThread


def test_password_hash_round_trip() -> None:
    """A scrypt hash verifies its own password and no other, and embeds a salt."""
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert hash_password("correct horse") != encoded
    assert not verify_password("x", "not-a-hash")


async def test_signup_stores_only_hashes(client: httpx.AsyncClient, store: Store) -> None:
    """Sign up returns a token, sets an HttpOnly SameSite cookie, and stores only hashes."""
    r = await client.post(
        "/api/auth/signup", json={"email": "Ann@Example.com", "password": "correct horse"}
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    cookie = r.headers["set-cookie"]
    assert "cf_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    row = await store.db.fetch_one("SELECT password_hash FROM users")
    assert row is not None and "correct horse" not in row["password_hash"]
    stored = await store.db.fetch_val("SELECT token_hash FROM sessions")
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()


async def test_me_with_bearer_and_with_cookie(
    client: httpx.AsyncClient, server: ServerThread
) -> None:
    """The same session works as a Bearer token and as the cookie."""
    account = await sign_up(client, "cookie@example.com")
    r = await client.get("/api/auth/me", headers=account.headers)
    assert r.status_code == 200 and r.json()["email"] == "cookie@example.com"
    async with httpx.AsyncClient(base_url=server.base_url) as browser:
        browser.cookies.set("cf_session", account.token)
        r = await browser.get("/api/auth/me")
        assert r.status_code == 200 and r.json()["id"] == account.user_id


async def test_login_is_case_insensitive_and_wrong_password_fails(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Log in accepts any case of the email and refuses a wrong password with 401."""
    r = await client.post(
        "/api/auth/login", json={"email": "ALICE@example.com", "password": "correct horse"}
    )
    assert r.status_code == 200 and r.json()["user"]["id"] == alice.user_id
    r = await client.post(
        "/api/auth/login", json={"email": "alice@example.com", "password": "nope"}
    )
    assert_error(r, 401, "invalid_credentials")
    r = await client.post(
        "/api/auth/login", json={"email": "ghost@example.com", "password": "nope"}
    )
    assert_error(r, 401, "invalid_credentials")


async def test_duplicate_email_is_409(client: httpx.AsyncClient, alice: Account) -> None:
    """A second account with the same address in another case is refused."""
    r = await client.post(
        "/api/auth/signup", json={"email": "ALICE@EXAMPLE.COM", "password": "another pass"}
    )
    assert_error(r, 409, "email_taken")


async def test_logout_revokes_the_session(client: httpx.AsyncClient, alice: Account) -> None:
    """After log out the token no longer authenticates."""
    r = await client.post("/api/auth/logout", headers=alice.headers)
    assert r.status_code == 204
    assert_error(await client.get("/api/auth/me", headers=alice.headers), 401, "unauthenticated")


async def test_expired_session_is_refused(
    client: httpx.AsyncClient, alice: Account, store: Store
) -> None:
    """A session past its expiry is treated as no session."""
    await store.db.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert_error(await client.get("/api/auth/me", headers=alice.headers), 401, "unauthenticated")


async def test_unauthenticated_and_bad_tokens(client: httpx.AsyncClient) -> None:
    """No token, a garbage token and another auth scheme all get 401."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        assert_error(await client.get("/api/projects", headers=headers), 401, "unauthenticated")


async def test_login_rate_limit_per_account(client: httpx.AsyncClient, alice: Account) -> None:
    """After 10 failed attempts even the right password gets 429 with a retry time."""
    for _ in range(10):
        r = await client.post(
            "/api/auth/login", json={"email": "alice@example.com", "password": "wrong!!!"}
        )
        assert r.status_code == 401
    r = await client.post(
        "/api/auth/login", json={"email": "alice@example.com", "password": "correct horse"}
    )
    assert_error(r, 429, "too_many_attempts")
    assert r.json()["error"]["retry_after_s"] > 0


async def test_cookie_mutation_from_foreign_origin_is_refused(
    client: httpx.AsyncClient, server: ServerThread, alice: Account, store: Store
) -> None:
    """A cross-site POST riding the cookie is 403; the same-origin one works."""
    async with httpx.AsyncClient(base_url=server.base_url) as browser:
        browser.cookies.set("cf_session", alice.token)
        before = await dump(store)
        r = await browser.post(
            "/api/projects", json={"name": "x"}, headers={"Origin": "https://evil.example"}
        )
        assert_error(r, 403, "forbidden_origin")
        assert await dump(store) == before
        r = await browser.post(
            "/api/projects", json={"name": "x"}, headers={"Origin": server.base_url}
        )
        assert r.status_code == 201


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("/api/auth/signup", {"json": {"email": "a@b.co"}}, 422, "invalid_body"),
        (
            "/api/auth/signup",
            {"json": {"email": "not-an-email", "password": "long enough"}},
            422,
            "invalid_body",
        ),
        (
            "/api/auth/signup",
            {"json": {"email": "a@b.co", "password": "short"}},
            422,
            "invalid_body",
        ),
        (
            "/api/auth/signup",
            {"json": {"email": 5, "password": "long enough"}},
            422,
            "invalid_body",
        ),
        (
            "/api/auth/signup",
            {"json": {"email": "a@b.co", "password": "long enough", "admin": True}},
            422,
            "invalid_body",
        ),
        ("/api/auth/signup", {"json": ["a@b.co"]}, 422, "invalid_body"),
        (
            "/api/auth/signup",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_json",
        ),
        (
            "/api/auth/signup",
            {
                "content": b"email=a",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported_media_type",
        ),
        ("/api/auth/signup", {"content": b"{}"}, 415, "unsupported_media_type"),
        (
            "/api/auth/signup",
            {
                "content": b'{"email":"' + b"a" * (2 << 20) + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "body_too_large",
        ),
        ("/api/auth/login", {"json": {"email": "a@b.co"}}, 422, "invalid_body"),
        (
            "/api/auth/login",
            {"json": {"email": "a@b.co", "password": 12345678}},
            422,
            "invalid_body",
        ),
        (
            "/api/auth/login",
            {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_json",
        ),
        ("/api/auth/logout", {}, 401, "unauthenticated"),
    ],
)
async def test_bad_auth_input(
    client: httpx.AsyncClient,
    store: Store,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    """Each malformed auth request gets its 4xx and code and changes nothing."""
    before = await dump(store)
    r = await client.post(path, **kwargs)  # type: ignore[arg-type]
    assert_error(r, status, code)
    assert await dump(store) == before
