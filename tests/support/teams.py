"""Helpers for the teams tests: accounts made fast, a shared project with one member per role.

Accounts are written straight through db/ (a user row and a session, the
token hashed as server/auth.py does) because scrypt makes a sign-up cost
~50 ms and the role matrix needs hundreds of them; sign-up itself is tested
in tests/test_auth.py. Everything else — sharing, nodes, jobs, invites — goes
through the REST API.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from PIL import Image

from db.changes import Store
from db.sessions import create_session
from db.takes import NewTake, insert_takes
from db.users import create_user
from server.auth import hash_token
from tests.support.accounts import Account
from tests.support.api import make_connection, make_node, make_project
from tests.support.workers import video_body


async def quick_account(store: Store, email: str | None = None) -> Account:
    """A user with a live session, written through db/ (no scrypt)."""
    email = email or f"user{secrets.token_hex(4)}@example.com"
    user = await create_user(store.db, email, "scrypt$not-a-real-hash")
    token = secrets.token_urlsafe(32)
    await create_session(store.db, user.id, hash_token(token), 3600)
    return Account(user_id=str(user.id), email=email, token=token)


async def share(
    client: httpx.AsyncClient, owner: Account, project_id: str, who: Account, role: str
) -> dict[str, Any]:
    """Add `who` to the project with `role` through the API; returns the member."""
    r = await client.post(
        f"/api/projects/{project_id}/members",
        json={"email": who.email, "role": role},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    member: dict[str, Any] = r.json()
    return member


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    """A small valid PNG."""
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Team:
    """A project shared with one member of each role, a stranger, and what the project holds."""

    owner: Account
    editor: Account
    viewer: Account
    #: a second viewer, for routes that act on another member
    extra: Account
    #: someone with an account who is not a member
    stranger: Account
    project: str
    prompt: dict[str, Any]
    #: a video node with a pending job
    video: dict[str, Any]
    #: a video node without one
    free_video: dict[str, Any]
    image: dict[str, Any]
    image_gen: dict[str, Any]
    connection: dict[str, Any]
    job: dict[str, Any]
    #: a take of `video`, as if its job had made it
    take: dict[str, Any]
    invite: dict[str, Any]

    def account(self, role: str) -> Account:
        """The account playing `role` (owner, editor, viewer, stranger)."""
        account: Account = getattr(self, role)
        return account


async def make_team(client: httpx.AsyncClient, store: Store) -> Team:
    """A shared project with nodes, a connection, a pending job and an open invite."""
    owner = await quick_account(store, "owner@example.com")
    editor = await quick_account(store, "editor@example.com")
    viewer = await quick_account(store, "viewer@example.com")
    extra = await quick_account(store, "extra@example.com")
    stranger = await quick_account(store, "stranger@example.com")
    pid = await make_project(client, owner, "Team")
    await share(client, owner, pid, editor, "editor")
    await share(client, owner, pid, viewer, "viewer")
    await share(client, owner, pid, extra, "viewer")
    prompt = await make_node(client, owner, pid, "prompt", data={"prompt": "a fox"})
    video = await make_node(client, owner, pid, "video", x=400)
    free_video = await make_node(client, owner, pid, "video", x=400, y=300)
    image = await make_node(client, owner, pid, "image", y=200)
    image_gen = await make_node(client, owner, pid, "image_gen", y=500)
    connection = await make_connection(client, owner, pid, prompt["id"], video["id"])
    r = await client.post(
        "/api/ai/generate-video", json=video_body(video["id"]), headers=owner.headers
    )
    assert r.status_code == 202, r.text
    job = r.json()
    # the take goes straight through db/: making one for real needs a worker run
    [take] = await insert_takes(
        store.db,
        UUID(pid),
        UUID(video["id"]),
        UUID(job["job_id"]),
        UUID(owner.user_id),
        [NewTake(index=0, media_key=f"{pid}/take.mp4", mime_type="video/mp4", params={})],
        version=0,
    )
    r = await client.post(
        f"/api/projects/{pid}/invites", json={"role": "viewer"}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    return Team(
        owner=owner,
        editor=editor,
        viewer=viewer,
        extra=extra,
        stranger=stranger,
        project=pid,
        prompt=prompt,
        video=video,
        free_video=free_video,
        image=image,
        image_gen=image_gen,
        connection=connection,
        job=job,
        take={"id": str(take.id)},
        invite=r.json(),
    )
