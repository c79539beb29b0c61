"""Where a job stands, on the canvas in real Chromium (issue 17): queue position and ETA while
pending, and for Veo, which reports no progress, a bar marked as estimated that never reaches
100 % before the clip is done.

The web process and the worker use Veo through the real google-genai SDK against the loopback
fake (tests/fakes/veo.py); a clip runs for as many polls as the fake's script says.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Locator, expect

from tests.support.browser import CanvasPage
from tests.support.budgets import Rig, rig
from tests.support.services import replace_settings
from tests.support.workers import WorkerHarness

__all__ = ["rig"]

#: in USD: room for the three clips of this module (0.80 each at the default list price)
BUDGET = 4.0
#: polls of the fake before a clip is done; with the provider's backoff from 0.05 s a clip runs
#: about 9 s, long enough for several of the once-a-second estimated ticks
POLLS = 10
CLIP_MS = 60_000


@pytest.fixture
async def tab(browser: Browser, rig: Rig) -> AsyncIterator[CanvasPage]:
    """A tab of the canvas app against the budgeted web process that generates with Veo."""
    rig.reset(polls_until_done=POLLS)
    page = await CanvasPage.open(browser, rig.server.base_url)
    yield page
    page.assert_no_errors()


@pytest.fixture
async def one_at_a_time(rig: Rig) -> AsyncIterator[WorkerHarness]:
    """A worker that runs one job at a time, so that a second job waits in the queue."""
    settings = replace_settings(rig.worker_settings, worker_max_jobs=1)
    async with WorkerHarness(settings) as harness:
        yield harness


def status_text(node: Locator) -> Locator:
    """The text beside a node's progress bar."""
    return node.locator(".progress-text")


@pytest.mark.timeout(400)
async def test_queue_position_eta_and_an_estimated_bar_for_veo(
    tab: CanvasPage, one_at_a_time: WorkerHarness
) -> None:
    """Two clips queued are next and 2nd in line; the first runs with a bar marked estimated that
    rises and stays below 100 %, the second moves up; once a clip of the kind has finished, a new
    one waiting says when it will be ready; the header shows what is left."""
    await tab.sign_up()
    await tab.create_project("Queue")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("A lighthouse at dusk")
    first, second = await tab.add_node("video"), await tab.add_node("video")
    for video in (first, second):
        await tab.connect(prompt, video, "prompt")
        await tab.node(video).get_by_label("Duration").select_option("4")
    a, b = tab.node(first), tab.node(second)
    await expect(tab.page.locator(".budget-badge")).to_contain_text("$4.00 left of $4.00")

    # no worker yet: both wait, in the order they were sent; nothing measured, so no ETA
    await a.get_by_role("button", name="Generate").click()
    await expect(status_text(a)).to_have_text("Queued · next in line")
    await b.get_by_role("button", name="Generate").click()
    await expect(status_text(b)).to_have_text("Queued · 2nd in line")
    await expect(tab.page.locator(".budget-badge")).to_contain_text("$2.40 left")  # reserved

    # the worker takes the first; Veo gives no progress, so the bar is the estimate
    await tab.record_progress(first)
    await one_at_a_time.start()
    estimated = a.get_by_role("progressbar", name="Generation progress (estimated)")
    await expect(estimated).to_be_visible(timeout=CLIP_MS)
    await expect(status_text(a)).to_have_text(re.compile(r"^~\d+% \(estimated\)"))
    await expect(status_text(b)).to_have_text("Queued · next in line")  # moved up
    await expect(a.locator(".badge")).to_have_text("Completed", timeout=CLIP_MS)
    shown = await tab.recorded_progress()
    print(f"estimated progress shown on the first clip: {shown}")
    moving = [p for p in shown if p > 0]
    assert len(set(moving)) >= 2, shown  # it moved while Veo worked
    assert moving == sorted(moving) and all(p < 100 for p in moving), shown

    # the second runs now, with the first clip's run time to go by
    await expect(status_text(b)).to_have_text(
        re.compile(r"^~\d+% \(estimated\) · (about \d+ s left|any moment now)$"), timeout=CLIP_MS
    )
    # a clip sent now waits behind it and says when it will be ready
    await a.get_by_role("button", name="Regenerate").click()
    await expect(status_text(a)).to_have_text(
        re.compile(r"^Queued · next in line · ready in about \d+ s$")
    )
    await expect(b.locator(".badge")).to_have_text("Completed", timeout=CLIP_MS)
    await expect(a.locator(".badge")).to_have_text("Completed", timeout=CLIP_MS)
    # three clips at $0.80 each, settled
    await expect(tab.page.locator(".budget-badge")).to_contain_text("$1.60 left of $4.00")
    usage = await tab.page.evaluate("async () => (await fetch('/api/me/usage')).json()")
    assert usage["spent"] == pytest.approx(2.40) and usage["reserved"] == 0, usage
