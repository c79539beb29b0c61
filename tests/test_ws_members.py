"""Membership over the websocket: a removed member's stream ends at its removal, a demoted one goes on."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar
from uuid import UUID

import httpx

from common import protocol
from db.changes import Store
from tests.support.servers import ServerThread
from tests.support.teams import Team, make_team, share
from tests.support.ws import Model, WsClient, follow, move_node


async def _subscribed(server: ServerThread, token: str, project_id: str) -> WsClient:
    ws = await WsClient.open(server.base_url, token)
    await ws.send({"type": "subscribe", "project_id": project_id, "presence": True})
    await ws.expect(protocol.Snapshot)
    return ws


async def _drain_until_pong(ws: WsClient) -> list[protocol.ServerMessage]:
    """Send a ping and collect every frame before its pong."""
    await ws.send({"type": "ping"})
    seen: list[protocol.ServerMessage] = []
    while not isinstance(frame := await ws.recv(), protocol.Pong):
        seen.append(frame)
    return seen


async def test_a_removed_member_gets_nothing_after_the_removal(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """Mid-stream removal: the member.removed event, then `access_revoked`, then not one event."""
    team = await make_team(client, store)
    pid = UUID(team.project)
    editor = await _subscribed(server, team.editor.token, team.project)
    viewer = await _subscribed(server, team.viewer.token, team.project)
    moving = asyncio.Event()

    async def keep_moving() -> None:
        # changes keep committing before, during and after the removal
        for i in range(10_000):
            await move_node(store, pid, team.prompt["id"], float(i))
            moving.set()
            await asyncio.sleep(0.002)

    mover = asyncio.create_task(keep_moving())
    try:
        await moving.wait()
        r = await client.delete(
            f"/api/projects/{team.project}/members/{team.editor.user_id}",
            headers=team.owner.headers,
        )
        assert r.status_code == 204
        removal = await store.db.fetch_val(
            "SELECT seq FROM events WHERE project_id = :p AND kind = 'member.removed'", {"p": pid}
        )
        # the editor's stream: consecutive events up to the removal, then the error
        seqs: list[int] = []
        while True:
            frame = await editor.recv()
            if isinstance(frame, protocol.Error):
                break
            if isinstance(frame, protocol.Event):
                seqs.append(frame.seq)
        assert frame.code == "access_revoked" and frame.project_id == pid
        assert seqs[-1] == removal, (seqs[-5:], removal)
        assert seqs == list(range(seqs[0], removal + 1))
        # twenty more changes reach the viewer, and none the editor
        model = Model()
        model.mirror.subscribe(pid)
        model.project = model.mirror.projects[pid]
        model.project.seq = removal
        model.project.pending = False
        await follow(viewer, model, removal + 20)
    finally:
        mover.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mover
    last = await store.db.fetch_val("SELECT seq FROM projects WHERE id = :p", {"p": pid})
    await follow(viewer, model, int(last))
    after = await _drain_until_pong(editor)
    assert [f for f in after if getattr(f, "project_id", None) == pid] == []
    # a resubscribe is a stranger's
    await editor.subscribe(team.project, since=removal)
    error = await editor.expect(protocol.Error)
    assert error.code == "project_not_found"
    # and a presence frame for the project is refused: there is no subscription
    await editor.send({"type": "presence", "project_id": team.project, "cursor": {"x": 1, "y": 1}})
    error = await editor.expect(protocol.Error)
    assert error.code == "not_subscribed"
    for ws in (editor, viewer):
        await ws.close()


async def test_a_removed_member_leaves_everyones_presence(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """The others see a removed member leave presence with the removal."""
    team = await make_team(client, store)
    editor = await _subscribed(server, team.editor.token, team.project)
    viewer = await _subscribed(server, team.viewer.token, team.project)
    held: dict[UUID, protocol.PresenceUser] = {}
    await _presence_with(viewer, held, {team.editor.user_id, team.viewer.user_id})
    r = await client.delete(
        f"/api/projects/{team.project}/members/{team.editor.user_id}", headers=team.owner.headers
    )
    assert r.status_code == 204
    await _presence_with(viewer, held, {team.viewer.user_id})
    await editor.close()
    await viewer.close()


async def _presence_with(
    ws: WsClient, held: dict[UUID, protocol.PresenceUser], users: set[str], timeout_s: float = 5
) -> None:
    """Apply presence frames to `held` until it is exactly `users`."""
    async with asyncio.timeout(timeout_s):
        while {str(u) for u in held} != users:
            frame = await ws.recv()
            if isinstance(frame, protocol.PresenceUpdate):
                if frame.full:
                    held.clear()
                held.update({u.user_id: u for u in frame.users})
                for gone in frame.left:
                    held.pop(gone, None)


async def test_a_demoted_editor_keeps_following_as_a_viewer(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """Demoted to viewer: the stream goes on, and the editing marker is refused (and cleared)."""
    team = await make_team(client, store)
    editor = await _subscribed(server, team.editor.token, team.project)
    await editor.send(
        {"type": "presence", "project_id": team.project, "editing": team.prompt["id"]}
    )
    watcher = await _subscribed(server, team.owner.token, team.project)
    await _editing(watcher, team.editor.user_id, team.prompt["id"])
    r = await client.patch(
        f"/api/projects/{team.project}/members/{team.editor.user_id}",
        json={"role": "viewer"},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    update = await _event(editor, protocol.MemberUpdated)
    assert update.data.member.role == protocol.Role.VIEWER
    # the marker goes with the right to edit
    await _editing(watcher, team.editor.user_id, None)
    await editor.send(
        {"type": "presence", "project_id": team.project, "editing": team.prompt["id"]}
    )
    error = await _error(editor)
    assert error.code == "forbidden_role" and error.project_id == UUID(team.project)
    # still subscribed: the next change arrives
    r = await client.patch(
        f"/api/nodes/{team.prompt['id']}", json={"x": 9}, headers=team.owner.headers
    )
    event = await _event(editor, protocol.NodeUpdated)
    assert event.data.node.x == 9
    await editor.close()
    await watcher.close()


async def _editing(ws: WsClient, user_id: str, node_id: str | None) -> None:
    async with asyncio.timeout(5):
        while True:
            frame = await ws.recv()
            if isinstance(frame, protocol.PresenceUpdate):
                mine = [u for u in frame.users if str(u.user_id) == user_id]
                if mine and str(mine[0].editing) == str(node_id):
                    return


P = TypeVar("P", bound=protocol.Payload)


async def _event(ws: WsClient, kind: type[P]) -> protocol.Event[P]:
    """The next event of `kind` (presence frames and other events skipped)."""
    while True:
        frame = await ws.recv()
        if isinstance(frame, protocol.Event) and isinstance(frame.data, kind):
            return frame  # type: ignore[return-value]


async def _error(ws: WsClient) -> protocol.Error:
    while True:
        frame = await ws.recv()
        if isinstance(frame, protocol.Error):
            return frame


async def test_a_member_added_again_gets_a_snapshot_not_a_replay(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """Resuming from before one's (re)admission replays nothing one was not there for."""
    team = await make_team(client, store)
    members = f"/api/projects/{team.project}/members"
    r = await client.get(f"/api/projects/{team.project}", headers=team.editor.headers)
    seq_then = r.json()["seq"]
    await client.delete(f"{members}/{team.editor.user_id}", headers=team.owner.headers)
    # something happens while they are away
    await client.patch(f"/api/nodes/{team.prompt['id']}", json={"x": 3}, headers=team.owner.headers)
    await share(client, team.owner, team.project, team.editor, "editor")
    ws = await WsClient.open(server.base_url, team.editor.token)
    await ws.subscribe(team.project, since=seq_then)
    snap = await ws.expect(protocol.Snapshot)
    assert snap.seq > seq_then
    await ws.close()


async def test_subscribers_see_members_in_the_snapshot_and_events(
    server: ServerThread, client: httpx.AsyncClient, store: Store
) -> None:
    """The snapshot lists the members; member events keep a mirror's list current."""
    team: Team = await make_team(client, store)
    ws = await WsClient.open(server.base_url, team.viewer.token)
    await ws.subscribe(team.project)
    model = Model()
    model.apply(await ws.expect(protocol.Snapshot))
    assert model.project is not None
    roles = {str(u): m.role.value for u, m in model.project.members.items()}
    assert roles == {
        team.owner.user_id: "owner",
        team.editor.user_id: "editor",
        team.viewer.user_id: "viewer",
        team.extra.user_id: "viewer",
    }
    await share(client, team.owner, team.project, team.stranger, "editor")
    await client.post(
        f"/api/projects/{team.project}/transfer",
        json={"user_id": team.editor.user_id},
        headers=team.owner.headers,
    )
    await client.delete(
        f"/api/projects/{team.project}/members/{team.extra.user_id}", headers=team.editor.headers
    )
    last = await store.db.fetch_val(
        "SELECT seq FROM projects WHERE id = :p", {"p": UUID(team.project)}
    )
    await follow(ws, model, int(last))
    roles = {str(u): m.role.value for u, m in model.project.members.items()}
    assert roles == {
        team.owner.user_id: "editor",
        team.editor.user_id: "owner",
        team.viewer.user_id: "viewer",
        team.stranger.user_id: "editor",
    }
    await ws.close()
