"""Members, invites and ownership: the rules, each bad input, and the events they make."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from db.changes import Store
from tests.support.api import assert_error, dump, make_project
from tests.support.services import Services
from tests.support.teams import make_team, quick_account, share


async def _events(store: Store, project_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await store.db.fetch_all(
        "SELECT kind, data FROM events WHERE project_id = :p ORDER BY seq", {"p": UUID(project_id)}
    )
    return [(r["kind"], r["data"]) for r in rows]


async def test_a_new_project_has_its_creator_as_owner(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The creator is the only member, as owner, and the list says so."""
    ann = await quick_account(store, "ann@example.com")
    pid = await make_project(client, ann)
    r = await client.get(f"/api/projects/{pid}/members", headers=ann.headers)
    assert r.status_code == 200
    [member] = r.json()
    assert (member["user_id"], member["email"], member["role"]) == (ann.user_id, ann.email, "owner")
    assert member["added_at"]


async def test_adding_changing_and_removing_members_are_events(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Add, change the role of, and remove a member: each is one seq'd event, in order."""
    ann, bob = await quick_account(store), await quick_account(store)
    pid = await make_project(client, ann)
    member = await share(client, ann, pid, bob, "editor")
    assert member["role"] == "editor" and member["email"] == bob.email
    r = await client.patch(
        f"/api/projects/{pid}/members/{bob.user_id}", json={"role": "viewer"}, headers=ann.headers
    )
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    # the same role again changes nothing and makes no event
    r = await client.patch(
        f"/api/projects/{pid}/members/{bob.user_id}", json={"role": "viewer"}, headers=ann.headers
    )
    assert r.status_code == 200
    r = await client.delete(f"/api/projects/{pid}/members/{bob.user_id}", headers=ann.headers)
    assert r.status_code == 204
    events = await _events(store, pid)
    assert [k for k, _ in events] == ["member.added", "member.updated", "member.removed"]
    assert events[0][1]["member"]["role"] == "editor" and events[0][1]["by"] == ann.user_id
    assert events[1][1]["member"]["role"] == "viewer"
    assert events[2][1] == {"user_id": bob.user_id, "by": ann.user_id}
    r = await client.get(f"/api/projects/{pid}", headers=ann.headers)
    assert r.json()["seq"] == 3


async def test_rest_access_ends_the_instant_a_member_is_removed(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The request right after the removal is a stranger's: 404, and their writes are refused."""
    team = await make_team(client, store)
    headers = team.editor.headers
    assert (await client.get(f"/api/projects/{team.project}", headers=headers)).status_code == 200
    r = await client.delete(
        f"/api/projects/{team.project}/members/{team.editor.user_id}", headers=team.owner.headers
    )
    assert r.status_code == 204
    assert_error(
        await client.get(f"/api/projects/{team.project}", headers=headers), 404, "project_not_found"
    )
    before = await dump(store)
    r = await client.patch(f"/api/nodes/{team.prompt['id']}", json={"x": 1}, headers=headers)
    assert_error(r, 404, "node_not_found")
    assert await dump(store) == before
    r = await client.get("/api/projects", headers=headers)
    assert r.json() == []


async def test_a_demoted_editor_reads_but_no_longer_writes(
    client: httpx.AsyncClient, store: Store
) -> None:
    """After a demotion to viewer the next write is 403 forbidden_role; reads still work."""
    team = await make_team(client, store)
    r = await client.patch(
        f"/api/projects/{team.project}/members/{team.editor.user_id}",
        json={"role": "viewer"},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    r = await client.patch(
        f"/api/nodes/{team.prompt['id']}", json={"x": 1}, headers=team.editor.headers
    )
    assert_error(r, 403, "forbidden_role")
    r = await client.get(f"/api/nodes/{team.prompt['id']}", headers=team.editor.headers)
    assert r.status_code == 200


async def test_member_bad_input(client: httpx.AsyncClient, store: Store) -> None:
    """Unknown roles, the owner's role, unknown emails, oneself, members twice: clear 4xx, no change."""
    team = await make_team(client, store)
    pid, owner = team.project, team.owner.headers
    members = f"/api/projects/{pid}/members"
    before = await dump(store)
    cases = [
        (client.post(members, json={"email": team.stranger.email, "role": "admin"}, headers=owner), 422, "invalid_role"),
        (client.post(members, json={"email": team.stranger.email, "role": "owner"}, headers=owner), 422, "invalid_role"),
        (client.post(members, json={"email": "nobody@example.com", "role": "viewer"}, headers=owner), 404, "user_not_found"),
        (client.post(members, json={"email": team.owner.email, "role": "editor"}, headers=owner), 409, "already_member"),
        (client.post(members, json={"email": team.editor.email.upper(), "role": "viewer"}, headers=owner), 409, "already_member"),
        (client.post(members, json={"email": team.stranger.email}, headers=owner), 422, "invalid_body"),
        (client.patch(f"{members}/{team.editor.user_id}", json={"role": "superuser"}, headers=owner), 422, "invalid_role"),
        (client.patch(f"{members}/{team.editor.user_id}", json={"role": "owner"}, headers=owner), 422, "invalid_role"),
        # the owner cannot demote or remove themselves: there must be an owner
        (client.patch(f"{members}/{team.owner.user_id}", json={"role": "editor"}, headers=owner), 409, "last_owner"),
        (client.delete(f"{members}/{team.owner.user_id}", headers=owner), 409, "last_owner"),
        (client.patch(f"{members}/{team.stranger.user_id}", json={"role": "viewer"}, headers=owner), 404, "member_not_found"),
        (client.delete(f"{members}/{team.stranger.user_id}", headers=owner), 404, "member_not_found"),
        (client.patch(f"{members}/not-a-uuid", json={"role": "viewer"}, headers=owner), 422, "invalid_id"),
        (client.post(f"/api/projects/{pid}/transfer", json={"user_id": team.owner.user_id}, headers=owner), 409, "already_owner"),
        (client.post(f"/api/projects/{pid}/transfer", json={"user_id": team.stranger.user_id}, headers=owner), 404, "member_not_found"),
        (client.post(f"/api/projects/{pid}/invites", json={"role": "owner"}, headers=owner), 422, "invalid_role"),
        (client.post(f"/api/projects/{pid}/invites", json={"role": "viewer", "expires_in_s": 5}, headers=owner), 422, "invalid_body"),
    ]  # fmt: skip
    for request, status, code in cases:
        assert_error(await request, status, code)
    assert await dump(store) == before


async def test_transfer_hands_the_project_over(client: httpx.AsyncClient, store: Store) -> None:
    """After a transfer the editor owns the project and the old owner is an editor, in one event."""
    team = await make_team(client, store)
    r = await client.post(
        f"/api/projects/{team.project}/transfer",
        json={"user_id": team.editor.user_id},
        headers=team.owner.headers,
    )
    assert r.status_code == 200 and r.json()["owner_id"] == team.editor.user_id
    r = await client.get(f"/api/projects/{team.project}/members", headers=team.viewer.headers)
    roles = {m["user_id"]: m["role"] for m in r.json()}
    assert roles[team.editor.user_id] == "owner" and roles[team.owner.user_id] == "editor"
    assert list(roles.values()).count("owner") == 1
    kind, data = (await _events(store, team.project))[-1]
    assert kind == "project.transferred"
    assert data["owner"]["user_id"] == team.editor.user_id
    assert data["previous_owner"]["role"] == "editor"
    # the old owner may no longer manage; the new one may
    r = await client.patch(
        f"/api/projects/{team.project}", json={"name": "x"}, headers=team.owner.headers
    )
    assert_error(r, 403, "forbidden_role")
    r = await client.patch(
        f"/api/projects/{team.project}", json={"name": "x"}, headers=team.editor.headers
    )
    assert r.status_code == 200


async def test_an_invite_admits_one_person_once(client: httpx.AsyncClient, store: Store) -> None:
    """Accepting makes the caller a member with the link's role; a second accept is 410."""
    team = await make_team(client, store)
    r = await client.post(
        f"/api/projects/{team.project}/invites",
        json={"role": "editor", "expires_in_s": 3600},
        headers=team.owner.headers,
    )
    assert r.status_code == 201
    link = r.json()
    assert link["url"].endswith(f"/?invite={link['token']}") and link["role"] == "editor"
    # only a hash of the token is stored
    stored = await store.db.fetch_val(
        "SELECT token_hash FROM project_invites WHERE id = :id", {"id": UUID(link["id"])}
    )
    assert bytes(stored) == hashlib.sha256(link["token"].encode()).digest()
    dump_text = repr(await dump(store))
    assert link["token"] not in dump_text
    r = await client.post(f"/api/invites/{link['token']}/accept", headers=team.stranger.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member"]["role"] == "editor" and body["project"]["role"] == "editor"
    assert body["project"]["id"] == team.project
    kind, data = (await _events(store, team.project))[-1]
    assert kind == "member.added" and data["by"] == team.stranger.user_id
    # accepting twice (even by someone else) is gone, and changes nothing
    newcomer = await quick_account(store)
    before = await dump(store)
    for who in (team.stranger, newcomer):
        assert_error(
            await client.post(f"/api/invites/{link['token']}/accept", headers=who.headers),
            410,
            "invite_expired",
        )
    assert await dump(store) == before
    r = await client.get(f"/api/projects/{team.project}/invites", headers=team.owner.headers)
    statuses = {i["id"]: i["status"] for i in r.json()}
    assert statuses[link["id"]] == "accepted" and statuses[team.invite["id"]] == "pending"
    assert all("token" not in i for i in r.json())


async def test_revoked_and_expired_invites_are_gone(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A revoked or expired link answers 410 invite_expired; an unknown one 404; a member 409."""
    team = await make_team(client, store)
    token = team.invite["token"]
    assert_error(
        await client.post(f"/api/invites/{token}/accept", headers=team.viewer.headers),
        409,
        "already_member",
    )
    r = await client.delete(
        f"/api/projects/{team.project}/invites/{team.invite['id']}", headers=team.owner.headers
    )
    assert r.status_code == 204
    before = await dump(store)
    assert_error(
        await client.post(f"/api/invites/{token}/accept", headers=team.stranger.headers),
        410,
        "invite_expired",
    )
    assert await dump(store) == before
    # an expired one: its time has passed (set in the row, rather than waiting a minute)
    r = await client.post(
        f"/api/projects/{team.project}/invites", json={"role": "viewer"}, headers=team.owner.headers
    )
    await store.db.execute(
        "UPDATE project_invites SET expires_at = now() - interval '1 second' WHERE id = :id",
        {"id": UUID(r.json()["id"])},
    )
    assert_error(
        await client.post(
            f"/api/invites/{r.json()['token']}/accept", headers=team.stranger.headers
        ),
        410,
        "invite_expired",
    )
    assert_error(
        await client.post("/api/invites/no-such-token/accept", headers=team.stranger.headers),
        404,
        "invite_not_found",
    )
    assert_error(
        await client.post(f"/api/invites/{'x' * 300}/accept", headers=team.stranger.headers),
        404,
        "invite_not_found",
    )
    assert_error(
        await client.delete(
            f"/api/projects/{team.project}/invites/{UUID(int=7)}", headers=team.owner.headers
        ),
        404,
        "invite_not_found",
    )
    assert_error(await client.post(f"/api/invites/{token}/accept"), 401, "unauthenticated")


@asynccontextmanager
async def project_locked(services: Services, project_id: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold the project's row lock (as a change does) in a transaction the caller may add to."""
    conn = await asyncpg.connect(services.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", UUID(project_id))
            yield conn
    finally:
        await conn.close()


async def waiting_on_locks(services: Services, n: int) -> None:
    """Return once `n` backends wait for a lock (the requests queued behind ours)."""
    conn = await asyncpg.connect(services.database_url)
    try:
        async with asyncio.timeout(10):
            while True:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
                if waiting >= n:
                    return
                await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_concurrent_accepts_of_one_invite_admit_one(
    services: Services, client: httpx.AsyncClient, store: Store
) -> None:
    """Ten people accept one link while all ten see it pending: one becomes a member, nine 410."""
    team = await make_team(client, store)
    people = [await quick_account(store) for _ in range(10)]
    async with project_locked(services, team.project):
        # every request passes its checks and queues on the project's lock
        answers_task = asyncio.gather(
            *(
                client.post(f"/api/invites/{team.invite['token']}/accept", headers=p.headers)
                for p in people
            )
        )
        await waiting_on_locks(services, 10)
    answers = await answers_task
    assert sorted(a.status_code for a in answers) == [200] + [410] * 9
    r = await client.get(f"/api/projects/{team.project}/members", headers=team.owner.headers)
    assert len(r.json()) == 5


async def test_a_write_racing_its_authors_removal_loses(
    services: Services, client: httpx.AsyncClient, store: Store
) -> None:
    """An edit that passed its access check before a removal committed is refused after it."""
    team = await make_team(client, store)
    before = None
    async with project_locked(services, team.project) as conn:
        edit = asyncio.ensure_future(
            client.patch(
                f"/api/nodes/{team.prompt['id']}", json={"x": 99}, headers=team.editor.headers
            )
        )
        await waiting_on_locks(services, 1)
        # the removal commits while the edit waits for the lock (as a change would)
        await conn.execute(
            "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
            UUID(team.project),
            UUID(team.editor.user_id),
        )
        before = await dump(store)
    assert_error(await edit, 404, "node_not_found")
    after = await dump(store)
    assert after["nodes"] == before["nodes"] and after["events"] == before["events"]
