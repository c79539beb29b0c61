"""The role by route matrix: every REST route and websocket message, for each role and a stranger.

Each case builds a fresh shared project (tests/support/teams.py), sends one
request as one role and checks the documented answer: allowed, or refused
with its code (`403 forbidden_role` for a member without the right, `404
<thing>_not_found` for a stranger) — and after a refusal, every row of every
table is as it was. `/media/{key}` is left out: its URLs are signed, and the
signature is the permission. The auth routes concern no project.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from common import protocol
from db.changes import Store
from server.app import routes
from tests.support.accounts import Account
from tests.support.api import assert_error, dump
from tests.support.servers import ServerThread
from tests.support.teams import Team, make_team, png_bytes
from tests.support.workers import video_body
from tests.support.ws import WsClient

Call = Callable[[httpx.AsyncClient, Team, Account], Awaitable[httpx.Response]]
ROLES = ("owner", "editor", "viewer", "stranger")
#: who may do what (server/access.py's RIGHTS, written out independently)
ALLOWED = {
    "read": {"owner", "editor", "viewer"},
    "edit": {"owner", "editor"},
    "manage": {"owner"},
}


@dataclass(frozen=True)
class Case:
    """One route: how to call it, the right it needs, and its answers."""

    name: str
    method: str
    path: str
    call: Call
    right: str
    ok: int
    #: the thing a stranger is told does not exist
    thing: str = "project"
    #: answers that differ from the rule, by role: (status, code or None)
    special: dict[str, tuple[int, str | None]] = field(default_factory=dict)


def req(method: str, path: Callable[[Team, Account], str], body: Any = None) -> Call:
    """A JSON request as `who`; `path` and a callable `body` see the team."""

    async def call(client: httpx.AsyncClient, team: Team, who: Account) -> httpx.Response:
        payload = body(team) if callable(body) else body
        return await client.request(method, path(team, who), json=payload, headers=who.headers)

    return call


async def _upload(client: httpx.AsyncClient, team: Team, who: Account) -> httpx.Response:
    return await client.post(
        f"/api/projects/{team.project}/uploads",
        files={"file": ("a.png", png_bytes(), "image/png")},
        data={"node_id": team.image["id"]},
        headers=who.headers,
    )


async def _cancel(client: httpx.AsyncClient, team: Team, who: Account) -> httpx.Response:
    return await client.post(f"/api/ai/jobs/{team.job['job_id']}/cancel", headers=who.headers)


def P(t: Team, _: Account) -> str:
    """The project's path."""
    return f"/api/projects/{t.project}"


CASES = [
    Case("get project", "GET", "/api/projects/{project_id}", req("GET", P), "read", 200),
    Case("rename", "PATCH", "/api/projects/{project_id}", req("PATCH", P, {"name": "New"}), "manage", 200),
    Case("delete project", "DELETE", "/api/projects/{project_id}", req("DELETE", P), "manage", 204),
    Case("list members", "GET", "/api/projects/{project_id}/members",
         req("GET", lambda t, _: P(t, _) + "/members"), "read", 200),
    Case("add member", "POST", "/api/projects/{project_id}/members",
         req("POST", lambda t, _: P(t, _) + "/members", lambda t: {"email": t.stranger.email, "role": "viewer"}),
         "manage", 201),
    Case("change role", "PATCH", "/api/projects/{project_id}/members/{user_id}",
         req("PATCH", lambda t, _: P(t, _) + f"/members/{t.extra.user_id}", {"role": "editor"}), "manage", 200),
    Case("remove member", "DELETE", "/api/projects/{project_id}/members/{user_id}",
         req("DELETE", lambda t, _: P(t, _) + f"/members/{t.extra.user_id}"), "manage", 204),
    # removing oneself is leaving: any member but the owner may
    Case("leave", "DELETE", "/api/projects/{project_id}/members/{user_id}",
         req("DELETE", lambda t, who: P(t, who) + f"/members/{who.user_id}"), "read", 204,
         special={"owner": (409, "last_owner")}),
    Case("transfer", "POST", "/api/projects/{project_id}/transfer",
         req("POST", lambda t, _: P(t, _) + "/transfer", lambda t: {"user_id": t.editor.user_id}),
         "manage", 200),
    Case("list invites", "GET", "/api/projects/{project_id}/invites",
         req("GET", lambda t, _: P(t, _) + "/invites"), "manage", 200),
    Case("create invite", "POST", "/api/projects/{project_id}/invites",
         req("POST", lambda t, _: P(t, _) + "/invites", {"role": "editor"}), "manage", 201),
    Case("revoke invite", "DELETE", "/api/projects/{project_id}/invites/{invite_id}",
         req("DELETE", lambda t, _: P(t, _) + f"/invites/{t.invite['id']}"), "manage", 204),
    # an invite is for someone who is not a member yet
    Case("accept invite", "POST", "/api/invites/{token}/accept",
         req("POST", lambda t, _: f"/api/invites/{t.invite['token']}/accept"), "manage", 200,
         special={r: (409, "already_member") for r in ("owner", "editor", "viewer")}
         | {"stranger": (200, None)}),
    Case("list nodes", "GET", "/api/projects/{project_id}/nodes",
         req("GET", lambda t, _: P(t, _) + "/nodes"), "read", 200),
    Case("create node", "POST", "/api/projects/{project_id}/nodes",
         req("POST", lambda t, _: P(t, _) + "/nodes", {"type": "prompt"}), "edit", 201),
    Case("get node", "GET", "/api/nodes/{node_id}",
         req("GET", lambda t, _: f"/api/nodes/{t.prompt['id']}"), "read", 200, "node"),
    Case("patch node", "PATCH", "/api/nodes/{node_id}",
         req("PATCH", lambda t, _: f"/api/nodes/{t.prompt['id']}", {"x": 5}), "edit", 200, "node"),
    Case("delete node", "DELETE", "/api/nodes/{node_id}",
         req("DELETE", lambda t, _: f"/api/nodes/{t.prompt['id']}"), "edit", 204, "node"),
    Case("list connections", "GET", "/api/projects/{project_id}/connections",
         req("GET", lambda t, _: P(t, _) + "/connections"), "read", 200),
    Case("create connection", "POST", "/api/projects/{project_id}/connections",
         req("POST", lambda t, _: P(t, _) + "/connections",
             lambda t: {"source_id": t.image["id"], "target_id": t.video["id"]}), "edit", 201),
    Case("delete connection", "DELETE", "/api/connections/{connection_id}",
         req("DELETE", lambda t, _: f"/api/connections/{t.connection['id']}"), "edit", 204,
         "connection"),
    Case("generate", "POST", "/api/ai/generate-video",
         req("POST", lambda t, _: "/api/ai/generate-video", lambda t: video_body(t.free_video["id"])),
         "edit", 202, "node"),
    Case("get job", "GET", "/api/ai/jobs/{job_id}",
         req("GET", lambda t, _: f"/api/ai/jobs/{t.job['job_id']}"), "read", 200, "job"),
    Case("cancel job", "POST", "/api/ai/jobs/{job_id}/cancel", _cancel, "edit", 200, "job"),
    Case("latest job", "GET", "/api/ai/nodes/{node_id}/jobs/latest",
         req("GET", lambda t, _: f"/api/ai/nodes/{t.video['id']}/jobs/latest"), "read", 200, "node"),
    Case("upload", "POST", "/api/projects/{project_id}/uploads", _upload, "edit", 201),
    Case("paste", "POST", "/api/projects/{project_id}/paste",
         req("POST", lambda t, _: P(t, _) + "/paste", {"nodes": [{"ref": "a", "type": "prompt"}]}),
         "edit", 201),
    Case("generate image", "POST", "/api/ai/generate-image",
         req("POST", lambda t, _: "/api/ai/generate-image",
             lambda t: {"node_id": t.image_gen["id"], "prompt": "a fox", "aspect_ratio": "16:9"}),
         "edit", 202, "node"),
    Case("list takes", "GET", "/api/nodes/{node_id}/takes",
         req("GET", lambda t, _: f"/api/nodes/{t.video['id']}/takes"), "read", 200, "node"),
    Case("choose take", "PUT", "/api/nodes/{node_id}/active-take",
         req("PUT", lambda t, _: f"/api/nodes/{t.video['id']}/active-take",
             lambda t: {"take_id": t.take["id"]}), "edit", 200, "node"),
    Case("delete take", "DELETE", "/api/takes/{take_id}",
         req("DELETE", lambda t, _: f"/api/takes/{t.take['id']}"), "edit", 204, "take"),
]  # fmt: skip
#: routes that concern no project, or whose permission is a signature
NOT_PROJECT_ROUTES = {
    "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json",
    "POST /api/auth/signup", "POST /api/auth/login", "POST /api/auth/logout", "GET /api/auth/me",
    "GET /media/{key:path}", "GET /api/node-types",
    "GET /api/projects", "POST /api/projects",  # tested below: every role, own list
}  # fmt: skip


def test_the_matrix_covers_every_route() -> None:
    """Every HTTP route of the app is in the matrix or named as concerning no project."""
    table = {f"{m} {p}" for m, p in [(c.method, c.path) for c in CASES]}
    app_routes = set()
    for route in routes():
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                app_routes.add(f"{method} {getattr(route, 'path', '')}")
    assert app_routes - NOT_PROJECT_ROUTES == table


def expected(case: Case, role: str) -> tuple[int, str | None]:
    """What `role` gets from `case`: (status, error code or None)."""
    if role in case.special:
        return case.special[role]
    if role in ALLOWED[case.right]:
        return case.ok, None
    if role == "stranger":
        return 404, f"{case.thing}_not_found"
    return 403, "forbidden_role"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_role_route_matrix(
    client: httpx.AsyncClient, store: Store, case: Case, role: str
) -> None:
    """The route answers this role as documented, and a refusal leaves every row as it was."""
    team = await make_team(client, store)
    before = await dump(store)
    response = await case.call(client, team, team.account(role))
    status, code = expected(case, role)
    if code is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, code)
        if code == "forbidden_role":
            assert response.json()["error"]["role"] == role
        assert await dump(store) == before


async def test_a_job_says_who_started_it(client: httpx.AsyncClient, store: Store) -> None:
    """An editor's job carries their id and email in `created_by`, over REST and in its event."""
    team = await make_team(client, store)
    r = await client.post(
        "/api/ai/generate-video",
        json=video_body(team.free_video["id"]),
        headers=team.editor.headers,
    )
    assert r.status_code == 202, r.text
    author = {"user_id": team.editor.user_id, "email": team.editor.email}
    assert r.json()["created_by"] == author
    r = await client.get(f"/api/ai/jobs/{r.json()['job_id']}", headers=team.viewer.headers)
    assert r.json()["created_by"] == author
    row = await store.db.fetch_one(
        "SELECT data FROM events WHERE kind = 'job.created' ORDER BY seq DESC LIMIT 1"
    )
    assert row is not None and row["data"]["job"]["created_by"] == author


async def test_project_list_shows_shared_projects_with_the_callers_role(
    client: httpx.AsyncClient, store: Store
) -> None:
    """GET /api/projects lists owned and shared projects with each role; a stranger's lacks it."""
    team = await make_team(client, store)
    for role in ("owner", "editor", "viewer"):
        r = await client.get("/api/projects", headers=team.account(role).headers)
        assert [(p["id"], p["role"]) for p in r.json()] == [(team.project, role)]
    r = await client.get("/api/projects", headers=team.stranger.headers)
    assert r.status_code == 200 and r.json() == []
    r = await client.get(f"/api/projects/{team.project}", headers=team.viewer.headers)
    assert r.json()["role"] == "viewer"


# -- websocket messages ------------------------------------------------------------

WS_MESSAGES: dict[str, Callable[[Team], dict[str, Any]]] = {
    "ping": lambda t: {"type": "ping"},
    "unsubscribe": lambda t: {"type": "unsubscribe", "project_id": t.project},
    "presence cursor": lambda t: {"type": "presence", "project_id": t.project, "cursor": {"x": 1, "y": 2}},
    "presence selection": lambda t: {"type": "presence", "project_id": t.project, "selection": [t.prompt["id"]]},
    "presence editing": lambda t: {"type": "presence", "project_id": t.project, "editing": t.prompt["id"]},
}  # fmt: skip
#: what each role gets back, by message: a frame type, or an error code
WS_EXPECTED: dict[str, dict[str, str]] = {
    "ping": dict.fromkeys(ROLES, "pong"),
    "unsubscribe": dict.fromkeys(ROLES, "unsubscribed"),
    "presence cursor": {"owner": "presence", "editor": "presence", "viewer": "presence", "stranger": "not_subscribed"},
    "presence selection": {"owner": "presence", "editor": "presence", "viewer": "presence", "stranger": "not_subscribed"},
    "presence editing": {"owner": "presence", "editor": "presence", "viewer": "forbidden_role", "stranger": "not_subscribed"},
}  # fmt: skip


async def _until(ws: WsClient, types: tuple[type, ...]) -> protocol.ServerMessage:
    """The next frame of one of `types`, skipping presence lists that do not answer us."""
    while True:
        frame = await ws.recv()
        if isinstance(frame, types):
            return frame


@pytest.mark.parametrize("role", ROLES)
async def test_role_websocket_matrix(
    server: ServerThread, client: httpx.AsyncClient, store: Store, role: str
) -> None:
    """Subscribe and every other client frame answer this role as documented; nothing is written."""
    team = await make_team(client, store)
    who = team.account(role)
    ws = await WsClient.open(server.base_url, who.token)
    try:
        await ws.send({"type": "subscribe", "project_id": team.project, "presence": True})
        first = await ws.expect(protocol.Snapshot if role != "stranger" else protocol.Error)
        if role == "stranger":
            assert isinstance(first, protocol.Error) and first.code == "project_not_found"
        else:
            assert isinstance(first, protocol.Snapshot)
            assert {str(m.user_id): m.role.value for m in first.members}[who.user_id] == role
            full = await _until(ws, (protocol.PresenceUpdate,))
            assert isinstance(full, protocol.PresenceUpdate) and full.full
        before = await dump(store)
        for name, message in WS_MESSAGES.items():
            if name == "unsubscribe":
                continue  # last: it ends the subscription the others need
            await ws.send(message(team))
            answer = await _until(ws, (protocol.PresenceUpdate, protocol.Pong, protocol.Error))
            want = WS_EXPECTED[name][role]
            if want in ("presence", "pong"):
                assert not isinstance(answer, protocol.Error), (name, answer)
                assert want == "pong" or isinstance(answer, protocol.PresenceUpdate)
            else:
                assert isinstance(answer, protocol.Error) and answer.code == want, (name, answer)
        await ws.send(WS_MESSAGES["unsubscribe"](team))
        assert isinstance(await _until(ws, (protocol.Unsubscribed,)), protocol.Unsubscribed)
        assert await dump(store) == before
    finally:
        await ws.close()
