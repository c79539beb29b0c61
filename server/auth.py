"""Accounts and sessions: sign up, log in, log out, me; who is calling; CSRF and rate limits."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from common import logs
from common.config import Settings
from db import sessions, users
from db.users import User
from server.bodies import decode_body
from server.errors import ApiError
from server.login_guard import DEVICE_COOKIE, DEVICE_TTL_S, LoginGuard
from server.openapi import api
from server.responses import json_response
from server.state import app_state

SESSION_COOKIE = "cf_session"
# scrypt at N=2^14, r=8: 16 MiB and ~50 ms per hash, memory-hard against GPU guessing
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

Email = Annotated[
    str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    """Body of sign up and log in."""

    email: Email
    password: Password


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of log in: any password length is accepted so old accounts can always log in."""

    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


class SessionResponse(msgspec.Struct):
    """The account and a bearer token for clients that do not keep cookies."""

    user: User
    token: str


def hash_password(password: str) -> str:
    """A self-describing scrypt hash of `password` with a fresh salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a hash made by hash_password."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
        maxmem=64 * 1024 * 1024,
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


@functools.cache
def dummy_hash() -> str:
    """A hash of no one's password: an unknown email is checked against it, so log in costs
    one scrypt whether or not the account exists."""
    return hash_password(secrets.token_urlsafe(16))


def hash_token(token: str) -> bytes:
    """The stored form of a session token (tokens are random, so sha256 is enough)."""
    return hashlib.sha256(token.encode()).digest()


def _token_from(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The session token and whether it came from the cookie."""
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, False
    cookie = conn.cookies.get(SESSION_COOKIE)
    return (cookie or None), True


def session_hash(conn: HTTPConnection) -> bytes | None:
    """The stored form of the request's session token, if it carries one."""
    token, _ = _token_from(conn)
    return hash_token(token) if token else None


#: how a session's user is looked up by the hash of its token (the websocket handshake
#: passes one that queues and shares lookups: server/realtime/reads.py)
SessionLookup = Callable[[bytes], Awaitable[User | None]]


async def authenticate(conn: HTTPConnection, lookup: SessionLookup | None = None) -> User | None:
    """The user behind the request's session, or None."""
    if "user" in conn.scope.get("state", {}):
        user: User | None = conn.state.user
        return user
    token, from_cookie = _token_from(conn)
    user = None
    if token:
        if lookup is None:
            store = app_state(conn).store
            user = await sessions.user_for_session(store.db, hash_token(token))
        else:
            user = await lookup(hash_token(token))
    conn.state.user = user
    conn.state.cookie_auth = from_cookie and user is not None
    if user is not None:
        logs.user_id.set(str(user.id))
    return user


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether the request's Origin is ours (absent Origin: not a browser, allowed)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in settings.allowed_origins:
        return True
    # same origin as the address the browser used, whatever the configured public URL
    host = conn.headers.get("host")
    return host is not None and origin in (f"http://{host}", f"https://{host}")


async def require_user(request: Request) -> User:
    """The calling user; 401 without a valid session, 403 for a cross-site cookie mutation."""
    user = await authenticate(request)
    if user is None:
        raise ApiError(
            401, "unauthenticated", "Log in first: send the session cookie or a Bearer token."
        )
    if (
        request.method in _UNSAFE_METHODS
        and request.state.cookie_auth
        and not origin_allowed(request, app_state(request).settings)
    ):
        raise ApiError(
            403, "forbidden_origin", "Cross-site requests may not use the session cookie."
        )
    return user


def _set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


def client_address(conn: HTTPConnection) -> str:
    """The caller's address: the socket's peer, or what a trusted proxy forwarded
    (uvicorn rewrites the client only for CANVASFLOW_TRUSTED_PROXIES)."""
    return conn.client.host if conn.client else "unknown"


def _guard(request: Request) -> LoginGuard:
    guard: LoginGuard = app_state(request).login_guard
    return guard


async def _start_session(request: Request, user: User, status: int) -> Response:
    store = app_state(request).store
    settings = app_state(request).settings
    token = secrets.token_urlsafe(32)
    await sessions.create_session(store.db, user.id, hash_token(token), settings.session_ttl_s)
    response = json_response(SessionResponse(user=user, token=token), status)
    _set_session_cookie(response, token, settings)
    guard = _guard(request)
    if not guard.device_ok(user.email, request.cookies.get(DEVICE_COOKIE)):
        # this browser now knows the account: the slow-down of attacks elsewhere spares it
        response.set_cookie(
            DEVICE_COOKIE,
            guard.device_token(user.email),
            max_age=DEVICE_TTL_S,
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
            path="/api/auth",
        )
    return response


@api(
    "Create an account and log in",
    body=Credentials,
    response=SessionResponse,
    status=201,
    errors=[403, 409, 429],
    auth=False,
)
async def signup(request: Request) -> Response:
    """POST /api/auth/signup: create an account and log it in."""
    if not origin_allowed(request, app_state(request).settings):
        raise ApiError(403, "forbidden_origin", "Sign up from the canvas's own origin.")
    body = await decode_body(request, Credentials)
    # before the scrypt: a flood of sign ups costs a counter, not a hash each
    await _guard(request).check_signup(client_address(request))
    store = app_state(request).store
    password_hash = await run_in_threadpool(hash_password, body.password)
    try:
        user = await users.create_user(store.db, body.email, password_hash)
    except users.EmailTaken:
        raise ApiError(409, "email_taken", "An account with this email already exists.") from None
    return await _start_session(request, user, 201)


@api("Log in", body=LoginBody, response=SessionResponse, errors=[401, 403, 429], auth=False)
async def login(request: Request) -> Response:
    """POST /api/auth/login: exchange email and password for a session."""
    if not origin_allowed(request, app_state(request).settings):
        raise ApiError(403, "forbidden_origin", "Log in from the canvas's own origin.")
    body = await decode_body(request, LoginBody)
    guard, address = _guard(request), client_address(request)
    await guard.begin_login(body.email, address, request.cookies.get(DEVICE_COOKIE))
    store = app_state(request).store
    try:
        found = await users.get_user_with_hash(store.db, body.email)
    except Exception:
        # not an attempt after all (the database failed): the account gets it back
        await guard.abandon_login(body.email)
        raise
    # an unknown email costs the same scrypt as a known one: timing tells nothing
    encoded = found[1] if found is not None else dummy_hash()
    ok = await run_in_threadpool(verify_password, body.password, encoded) and found is not None
    await guard.end_login(body.email, address, ok=ok)
    if not ok or found is None:
        raise ApiError(401, "invalid_credentials", "Wrong email or password.")
    return await _start_session(request, found[0], 200)


@api("Log out: revoke this session", status=204)
async def logout(request: Request) -> Response:
    """POST /api/auth/logout: revoke the current session."""
    await require_user(request)
    token, _ = _token_from(request)
    if token:
        store = app_state(request).store
        await sessions.delete_session(store.db, hash_token(token))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@api("The logged-in user", response=User)
async def me(request: Request) -> Response:
    """GET /api/auth/me: the logged-in user."""
    return json_response(await require_user(request))
