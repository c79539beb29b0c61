"""The canvas in a real Chromium against the real app: uvicorn, Postgres, Redis, an arq worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from db.changes import Store
from tests.browser_utils import (
    CONTRAST_FAILURES_JS,
    PASSWORD,
    UNLABELLED_JS,
    CanvasPage,
    launch_chromium,
)
from tests.conftest import ServerThread


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Debian Chromium for one test."""
    async with launch_chromium() as b:
        yield b


@pytest.fixture
async def tab(browser: Browser, server: ServerThread) -> AsyncIterator[CanvasPage]:
    """A tab of the canvas app in a fresh context; fails the test on any page error."""
    page = await CanvasPage.open(browser, server.base_url)
    yield page
    page.assert_no_errors()


async def test_sign_up_log_out_log_in_and_manage_projects(tab: CanvasPage) -> None:
    """A visitor signs up, creates and deletes projects, logs out, and logs back in."""
    page = tab.page
    await tab.goto()
    await expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    email = await tab.sign_up()
    await expect(page.get_by_text("No projects yet.")).to_be_visible()
    await tab.screenshot("projects-empty")

    await tab.create_project("Launch teaser")
    await expect(page.locator("#project-name")).to_have_value("Launch teaser")
    await page.get_by_role("link", name="All projects").click()
    await tab.create_project("Throwaway")
    await page.get_by_role("link", name="All projects").click()
    cards = page.locator(".project-card")
    await expect(cards).to_have_count(2)

    await page.get_by_role("button", name="Delete Throwaway").click()
    await page.get_by_role("button", name="Delete project").click()
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("Launch teaser")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#auth-error")).to_have_text("Wrong email or password.")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(cards).to_have_count(1)
    # the session cookie is HttpOnly: page scripts cannot read it
    assert "cf_session" not in await page.evaluate("document.cookie")
    cookies = await tab.context.cookies()
    assert [c["httpOnly"] for c in cookies if c["name"] == "cf_session"] == [True]


async def test_edit_canvas_and_find_it_after_reload(tab: CanvasPage, store: Store) -> None:
    """Nodes, prompt text, moves and connections made by hand are saved and redrawn on reload."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Fox at dawn")
    await expect(page.get_by_text("An empty canvas")).to_be_visible()

    prompt = await tab.add_node("prompt")
    await page.get_by_label("Prompt text").fill("A red fox trotting through snowy pines at dawn")
    image = await tab.add_node("image")
    video = await tab.add_node("video")
    spare = await tab.add_node("prompt")
    await tab.connect(prompt, video)
    await tab.connect(image, video)
    await tab.connect(spare, video)
    await expect(tab.node(video).locator(".input-value").first).to_have_text(
        "A red fox trotting through snowy pines at dawn"
    )

    # delete the spare prompt's connection: click the edge, press Delete
    edge = page.locator(".edge").nth(2)
    await edge.locator(".edge-hit").focus()
    await page.keyboard.press("Delete")
    await expect(page.locator(".edge")).to_have_count(2)
    # then the spare node itself with its delete button
    await tab.node(spare).get_by_role("button", name="Delete prompt node").click()
    await expect(tab.nodes()).to_have_count(3)

    before = await tab.node_position(video)
    await tab.move_node(video, 120, 60)
    moved = await tab.node_position(video)
    assert moved[0] == pytest.approx(before[0] + 120, abs=1)
    assert moved[1] == pytest.approx(before[1] + 60, abs=1)
    await expect(tab.node(prompt).locator(".save-state")).to_have_text("Saved")
    await page.wait_for_function(
        f"""async () => {{
            const n = await (await fetch('/api/nodes/{video}')).json();
            return Math.abs(n.x - {moved[0]}) < 1 && Math.abs(n.y - {moved[1]}) < 1;
        }}"""
    )

    await page.reload()
    await tab.wait_live()
    await expect(tab.nodes()).to_have_count(3)
    await expect(page.locator(".edge")).to_have_count(2)
    await expect(page.get_by_label("Prompt text")).to_have_value(
        "A red fox trotting through snowy pines at dawn"
    )
    assert await tab.node_position(video) == pytest.approx(moved, abs=1)
    rows = await store.db.fetch_all(
        "SELECT source_id::text AS s, target_id::text AS t FROM connections WHERE project_id = :p",
        {"p": project_id},
    )
    assert {(r["s"], r["t"]) for r in rows} == {(prompt, video), (image, video)}


async def test_keyboard_only_wiring_labels_and_contrast(tab: CanvasPage) -> None:
    """Nodes are added and wired with the keyboard alone; controls are labelled and text readable."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Keyboard")
    await page.get_by_role("button", name="Add prompt node").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Prompt text")).to_be_focused()
    await page.keyboard.type("Waves at night")
    await page.get_by_role("button", name="Add video node").focus()
    await page.keyboard.press("Enter")
    await expect(tab.nodes("video")).to_have_count(1)

    # Enter on an output handle arms a connection; Enter on an input handle completes it
    await page.get_by_role("button", name="Connect from this prompt node").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".connect-hint")).to_be_visible()
    await page.get_by_role("button", name="Connect into this video node").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".edge")).to_have_count(1)
    await expect(page.get_by_role("button", name="Generate")).to_be_enabled()

    assert await page.evaluate(UNLABELLED_JS) == []
    assert await page.evaluate(CONTRAST_FAILURES_JS) == []
    await tab.screenshot("keyboard")


async def test_narrow_window(browser: Browser, server: ServerThread) -> None:
    """On a phone-sized window the list and the canvas fit, and every tool stays in reach."""
    tab = await CanvasPage.open(browser, server.base_url, viewport={"width": 390, "height": 780})
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Small screen")
    prompt = await tab.add_node("prompt")
    video = await tab.add_node("video")
    await tab.connect(prompt, video)
    for name in [
        "Add prompt node",
        "Add image node",
        "Add video node",
        "Zoom in",
        "Zoom out",
        "Log out",
    ]:
        box = await page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, name
        assert box["y"] + box["height"] <= 780, name
    # every new node landed inside the visible canvas
    for node_id in (prompt, video):
        box = await tab.node(node_id).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] < 390 - 40
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await page.evaluate(CONTRAST_FAILURES_JS) == []
    await tab.screenshot("narrow")
    tab.assert_no_errors()
