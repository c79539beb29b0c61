"""The README's shell one-liners, run exactly as written against the test server."""

from __future__ import annotations

import asyncio
import subprocess

import httpx

from tests.support.accounts import Account
from tests.support.servers import ServerThread
from tests.support.services import ROOT


def token_one_liner() -> str:
    """The README's `export CANVASFLOW_TOKEN=$(curl ... | python3 -c ...)` command, verbatim."""
    text = (ROOT / "README.md").read_text()
    start = text.index("export CANVASFLOW_TOKEN=$(")
    end = text.index(".venv/bin/canvasflow watch", start)
    return text[start:end]


async def run_one_liner(
    server: ServerThread, email: str, password: str
) -> subprocess.CompletedProcess[str]:
    """Run the one-liner with this email and password, then print the token it exported."""
    command = token_one_liner().replace("you@example.com", email).replace("your password", password)
    script = f'export CANVASFLOW_URL={server.base_url}\n{command}\nprintf "token=%s" "$CANVASFLOW_TOKEN"\n'
    return await asyncio.to_thread(
        subprocess.run, ["bash", "-c", script], capture_output=True, text=True, timeout=30
    )


async def test_token_one_liner_exports_a_working_token(
    client: httpx.AsyncClient, server: ServerThread, alice: Account
) -> None:
    """With the right password the one-liner exports a token that authenticates."""
    done = await run_one_liner(server, alice.email, "correct horse")
    assert done.stderr == ""
    token = done.stdout.removeprefix("token=")
    assert token
    r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["email"] == alice.email


async def test_token_one_liner_says_why_on_a_wrong_password(
    server: ServerThread, alice: Account
) -> None:
    """With a wrong password it prints the server's reason, no traceback, and exports no token."""
    done = await run_one_liner(server, alice.email, "not my password")
    assert done.stderr.strip() == "log in failed: Wrong email or password.", done.stderr
    assert done.stdout == "token="
