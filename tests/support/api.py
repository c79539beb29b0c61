"""Helpers for REST tests: build a small project, dump the database."""

from __future__ import annotations

from typing import Any

import httpx

from db.changes import Store
from tests.support.accounts import Account

TABLES = (
    "users",
    "sessions",
    "projects",
    "project_members",
    "project_invites",
    "nodes",
    "connections",
    "jobs",
    "events",
    "uploads",
    "takes",
)


async def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in a stable order, for before/after comparisons."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table in TABLES:
        rows = await store.db.fetch_all(f"SELECT * FROM {table}")
        out[table] = sorted((dict(r._mapping) for r in rows), key=repr)
    return out


async def make_project(client: httpx.AsyncClient, who: Account, name: str = "Demo") -> str:
    """A new project of `who`; returns its id."""
    r = await client.post("/api/projects", json={"name": name}, headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def make_node(
    client: httpx.AsyncClient, who: Account, project_id: str, type_: str = "prompt", **body: Any
) -> dict[str, Any]:
    """A new node in the project; returns it."""
    r = await client.post(
        f"/api/projects/{project_id}/nodes", json={"type": type_, **body}, headers=who.headers
    )
    assert r.status_code == 201, r.text
    node: dict[str, Any] = r.json()
    return node


async def make_connection(
    client: httpx.AsyncClient, who: Account, project_id: str, source: str, target: str
) -> dict[str, Any]:
    """A new connection; returns it."""
    r = await client.post(
        f"/api/projects/{project_id}/connections",
        json={"source_id": source, "target_id": target},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    connection: dict[str, Any] = r.json()
    return connection


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The response is the error `code` with `status`, in the one error shape."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
