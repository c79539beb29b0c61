"""Money on the canvas (issue 17) in real Chromium: the cost before Generate, the budget in the header, and a Generate the budget cannot pay for refused before it is sent."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from common.config import Settings
from common.prices import parse_prices
from tests.support.browser import CanvasPage, launch_chromium
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for
from tests.support.workers import WorkerHarness, running_worker

RENDER_WAIT_MS = 150_000
#: the local renderer charged like a cheap model, and a budget of two and a half 4 s clips
PRICES = '{"local/*": {"per_second": 0.05}}'
BUDGET_MICROS = 500_000


def money_settings(services: Services, port: int | None = None) -> Settings:
    """Settings with the demo price and the small budget, for the web process and the worker."""
    extra: dict[str, object] = {}
    if port is not None:
        extra = {
            "public_url": f"http://127.0.0.1:{port}",
            "allowed_origins": (f"http://127.0.0.1:{port}",),
        }
    return settings_for(services, prices=parse_prices(PRICES), budget_micros=BUDGET_MICROS, **extra)


@pytest.fixture
async def money_server(services: Services) -> AsyncIterator[ServerThread]:
    """A web process whose users each have $0.50 a month and whose local renders cost $0.05/s."""
    port = free_port()
    srv = ServerThread(money_settings(services, port), port)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[WorkerHarness]:
    """A real arq worker with the local renderer and the same prices."""
    async with running_worker(money_settings(services)) as harness:
        yield harness


@pytest.fixture
async def tab(money_server: ServerThread) -> AsyncIterator[CanvasPage]:
    """A tab of the canvas app against the budgeted server."""
    async with launch_chromium() as browser:
        page = await CanvasPage.open(browser, money_server.base_url)
        yield page
        page.assert_no_errors()


@pytest.mark.timeout(400)
async def test_cost_before_generate_budget_in_the_header_and_no_overspend(
    tab: CanvasPage, worker: WorkerHarness
) -> None:
    """A new user with $0.50 sees each clip's cost before Generate and what is left after it; the clip that no longer fits is refused on the node, and nothing is spent for it."""
    await tab.sign_up()
    await tab.create_project("Money")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("A paper boat on a rainy street")
    video = await tab.add_node("video")
    await tab.connect(prompt, video, "prompt")
    node = tab.node(video)
    badge = tab.page.locator(".budget-badge")

    await expect(node.locator(".cost")).to_have_text("≈ $0.40")  # 8 s, the default
    await node.get_by_label("Duration").select_option("4")
    await expect(node.locator(".cost")).to_have_text("≈ $0.20")  # the estimate follows
    cost = 0.20
    await expect(badge).to_contain_text("$0.50 left of $0.50")

    spent = 0.0
    takes = node.get_by_role("region", name="Takes").locator(".take")
    for made in (1, 2):
        await node.get_by_role("button", name=re.compile("Generate|Regenerate")).click()
        # the badge still says Completed from the clip before: wait for this job's take
        await expect(takes).to_have_count(made, timeout=RENDER_WAIT_MS)
        await expect(node.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
        spent += cost
        await expect(badge).to_contain_text(f"${0.50 - spent:.2f} left")

    # $0.10 is left and the clip costs $0.20: the node says so and Generate is off
    generate = node.get_by_role("button", name="Regenerate")
    await expect(generate).to_be_disabled()
    await expect(node.locator(".budget-note")).to_contain_text("$0.10")
    usage = await tab.page.evaluate("async () => (await fetch('/api/me/usage')).json()")
    assert usage["spent"] == pytest.approx(0.40) and usage["reserved"] == 0
    assert usage["remaining"] == pytest.approx(0.10)

    # even a request sent around the canvas is refused by the server, with what remains
    answer = await tab.page.evaluate(
        """async (id) => {
            const r = await fetch('/api/ai/generate-video', {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({node_id: id, aspect_ratio: '16:9', resolution: '720p',
                                      duration: 4})});
            return {status: r.status, body: await r.json()};
        }""",
        video,
    )
    assert answer["status"] == 402, answer
    assert answer["body"]["error"]["code"] == "budget_exceeded"
