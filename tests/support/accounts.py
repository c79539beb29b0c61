"""Accounts made through the API, and the headers that authenticate as them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx


@dataclass
class Account:
    """A signed-up user and the headers that authenticate as them."""

    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Bearer auth headers."""
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up(client: httpx.AsyncClient, email: str | None = None) -> Account:
    """Create an account through the API."""
    email = email or f"user{secrets.token_hex(4)}@example.com"
    r = await client.post("/api/auth/signup", json={"email": email, "password": "correct horse"})
    assert r.status_code == 201, r.text
    # the shared client must not ride this user's cookie: tests authenticate explicitly
    client.cookies.clear()
    body = r.json()
    return Account(user_id=body["user"]["id"], email=email, token=body["token"])
