"""A web process that prices and budgets jobs, generating with the Veo fake, for budget tests.

The web process and its workers use Veo through the real google-genai SDK
against the loopback fake (tests/fakes/veo.py), so jobs are priced with the
default list prices of veo-3.1-generate-001: a 4 s 720p clip without audio is
4 x 0.20 = 0.80 USD. The budget allows exactly three of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from common.config import Settings
from db.changes import Store
from tests.fakes.veo import API_KEY, FakeVeo, VeoScript
from tests.support.accounts import Account
from tests.support.servers import AppThread, ServerThread
from tests.support.services import Services, free_port, settings_for

#: what one default test clip costs (veo-3.1-generate-001, 720p, 4 s, no audio)
CLIP_COST = 0.80
#: a budget of exactly three clips
BUDGET = 2.40
#: micro-units of the currency (common/prices.py)
MICROS = 1_000_000


@dataclass
class Rig:
    """The Veo fake, the budgeted web process, and the settings its workers run with."""

    fake: FakeVeo
    server: ServerThread
    worker_settings: Settings
    veo_env: dict[str, str]

    def reset(self, **script: Any) -> None:
        """Answer with a fresh script from now on."""
        self.fake.reset(VeoScript(**script))


def veo_settings(veo_url: str, poll_interval_s: float = 0.01) -> dict[str, Any]:
    """Settings that point Veo (and Gemini images) at the fake."""
    return {
        "gemini_api_key": API_KEY,
        "veo_base_url": veo_url,
        "image_base_url": veo_url,
        "veo_poll_interval_s": poll_interval_s,
    }


@pytest.fixture(scope="module")
def rig(request: pytest.FixtureRequest, services: Services) -> Iterator[Rig]:
    """One fake and one budgeted web process for the module's tests.

    A test module may set its own `BUDGET` (in USD).
    """
    budget = getattr(request.module, "BUDGET", BUDGET)
    fake = FakeVeo()
    with AppThread(fake.app) as veo:
        port = free_port()
        web = settings_for(
            services,
            public_url=f"http://127.0.0.1:{port}",
            allowed_origins=(f"http://127.0.0.1:{port}",),
            budget_micros=round(budget * MICROS),
            budget_period="month",
            **veo_settings(veo.url),
        )
        server = ServerThread(web, port)
        server.start()
        try:
            yield Rig(
                fake=fake,
                server=server,
                worker_settings=settings_for(services, **veo_settings(veo.url, 0.05)),
                veo_env={
                    "GEMINI_API_KEY": API_KEY,
                    "CANVASFLOW_VEO_BASE_URL": veo.url,
                    "CANVASFLOW_VEO_POLL_INTERVAL_S": "0.05",
                },
            )
        finally:
            server.stop()


@pytest.fixture
async def web(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the budgeted web process; the fake answers with its default script."""
    rig.reset()
    async with httpx.AsyncClient(base_url=rig.server.base_url, timeout=30) as c:
        yield c


async def ledger(store: Store) -> list[dict[str, Any]]:
    """Every ledger entry, oldest first."""
    rows = await store.db.fetch_all("SELECT * FROM budget_ledger ORDER BY created_at, entry")
    return [dict(r._mapping) for r in rows]


async def budget_row(store: Store, user: Account) -> dict[str, Any]:
    """The user's budget row of this period (spent and reserved, in micro-units)."""
    rows = await store.db.fetch_all(
        "SELECT spent, reserved FROM budgets WHERE user_id = CAST(:u AS uuid)",
        {"u": user.user_id},
    )
    assert len(rows) == 1, rows
    return dict(rows[0]._mapping)


async def usage(client: httpx.AsyncClient, who: Account) -> dict[str, Any]:
    """GET /api/me/usage."""
    r = await client.get("/api/me/usage", headers=who.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
