"""The bugs a new user hit on the old canvas (issue 18), each in a real Chromium against the real app."""

from __future__ import annotations

import json
import re

import httpx
from playwright.async_api import expect

from tests.support.accounts import sign_up
from tests.support.browser import PASSWORD, CanvasPage


async def test_sign_up_through_a_deep_link_to_a_foreign_project_says_so_once(
    tab: CanvasPage, client: httpx.AsyncClient
) -> None:
    """Signing up from a link to someone else's project lands on the list with one notice, not four contradictory ones."""
    owner = await sign_up(client)
    r = await client.post("/api/projects", json={"name": "Not yours"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    page = tab.page
    await tab.goto(f"#/p/{r.json()['id']}")
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Email").fill("newcomer@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    await expect(page.locator("#project-list")).to_have_attribute("aria-busy", "false")
    toasts = page.locator("#toasts .toast")
    await expect(toasts).to_have_count(1)
    await expect(toasts.first.locator(".toast-text")).to_have_text(
        "That project does not exist, or it is not yours."
    )


async def test_no_stray_focus_ring_on_main(tab: CanvasPage) -> None:
    """At load nothing draws a focus ring on <main>; when a navigation focuses it, it still shows none."""
    page = tab.page
    await tab.sign_up()
    await page.reload()
    await page.get_by_role("heading", name="Projects").wait_for()
    assert await page.evaluate("document.activeElement.id") != "main"
    await tab.create_project("Focus")
    assert await page.evaluate("document.activeElement.id") == "main"
    ring = await page.evaluate(
        "(() => { const s = getComputedStyle(document.getElementById('main')); return [s.boxShadow, s.outlineStyle]; })()"
    )
    assert ring == ["none", "none"]


async def test_toolbar_stays_above_nodes_at_200_percent(tab: CanvasPage) -> None:
    """At 200 % a node under the toolbar is drawn beneath it: every tool is still the element under its own centre."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Zoomed")
    r = await page.evaluate(
        """async (p) => (await fetch(`/api/projects/${p}/nodes`, {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({type: 'video', x: 0, y: 0})})).status""",
        project_id,
    )
    assert r == 201
    await page.evaluate(
        "([p, v]) => localStorage.setItem(`cf-view-${p}`, v)",
        [project_id, json.dumps({"x": 0, "y": 0, "zoom": 2})],
    )
    await page.reload()
    await tab.wait_live()
    await expect(page.locator(".zoom-label")).to_have_text("200%")
    await expect(tab.nodes("video")).to_have_count(1)
    tools = page.get_by_role("toolbar", name="Canvas tools").get_by_role("button")
    assert await tools.count() >= 10
    covered = await tools.evaluate_all(
        """buttons => buttons.filter(b => {
            const r = b.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return !b.contains(hit);
        }).map(b => b.getAttribute('aria-label'))"""
    )
    assert covered == []
    # and the node really is under the toolbar
    node = await tab.flow_node((await tab.node_ids())[0]).bounding_box()
    bar = await page.get_by_role("toolbar", name="Canvas tools").bounding_box()
    assert node is not None and bar is not None and node["y"] < bar["y"] + bar["height"]


async def test_offline_notice_keeps_the_counter_on_one_line_and_saves_when_back(
    tab: CanvasPage,
) -> None:
    """Typing offline says so without wrapping the character counter, and the text saves once the network is back."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Offline")
    prompt = await tab.add_node("prompt")
    node = tab.node(prompt)
    await tab.context.set_offline(True)
    await expect(page.locator("#link-status")).to_have_attribute("data-state", "offline")
    await node.get_by_label("Prompt text").fill("Typed on a train")
    await expect(node.locator(".save-state")).to_have_text("Offline: saves when back")
    shape = await node.locator(".node-foot").evaluate(
        """foot => {
            const counter = foot.querySelector('.counter').getBoundingClientRect();
            const state = foot.querySelector('.save-state').getBoundingClientRect();
            const line = parseFloat(getComputedStyle(foot.querySelector('.counter')).lineHeight);
            return {counter: counter.height, line, sameRow: Math.abs(counter.top - state.top) < 2};
        }"""
    )
    assert shape["counter"] < 1.5 * shape["line"], shape
    assert shape["sameRow"], shape
    await expect(node.locator(".counter")).to_have_text("16 / 4000")
    await tab.context.set_offline(False)
    await expect(node.locator(".save-state")).to_have_text("Saved", timeout=15_000)
    await page.reload()
    await tab.wait_live()
    await expect(tab.node(prompt).get_by_label("Prompt text")).to_have_value("Typed on a train")


async def test_connections_that_do_not_fit_are_refused_while_dragging(tab: CanvasPage) -> None:
    """Dragging from a prompt lights only the video node's prompt input; prompt into prompt, into an image port, a second prompt, and a cycle of video extensions are refused with a visible reason."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Ports")
    first = await tab.add_node("prompt")
    second = await tab.add_node("prompt")
    image = await tab.add_node("image")
    video = await tab.add_node("video")
    # sources have no inputs; a video node gives its video out (into another's Extend)
    for source in (first, second, image):
        await expect(tab.node(source).locator(".handle-in")).to_have_count(0)
    await expect(tab.node(video).locator(".handle-out")).to_have_count(1)

    async def drag_from(node_id: str) -> None:
        box = await tab.node(node_id).locator(".handle-out").bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        for step in range(1, 6):
            await page.mouse.move(box["x"] + 20 * step, box["y"] + 10 * step)

    async def drop_on(target: str) -> None:
        box = await page.locator(target).bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=6)
        await page.mouse.up()

    await drag_from(first)
    await expect(tab.port(video, "prompt")).to_have_class(has_class("port-compatible"))
    await expect(tab.port(video, "first_frame")).to_have_class(has_class("port-incompatible"))
    # onto another prompt's card (the old canvas took any node): refused, and it says why
    await drop_on(f'.node[data-node-id="{second}"] .node-title')
    await expect(page.locator(".react-flow__connectionline")).to_have_count(0)
    await expect(
        page.get_by_role("alert").filter(has_text="A prompt node takes no text input.")
    ).to_be_visible()
    await drag_from(first)
    await drop_on(f'.node[data-node-id="{video}"] .handle-in[data-port="first_frame"]')
    await expect(
        page.get_by_role("alert").filter(has_text="First frame takes an image, not text.")
    ).to_be_visible()
    await expect(page.locator(".edge")).to_have_count(0)

    await tab.connect(first, video)
    await drag_from(second)
    await expect(tab.port(video, "prompt")).to_have_class(has_class("port-incompatible"))
    await drop_on(f'.node[data-node-id="{video}"] .handle-in[data-port="prompt"]')
    await expect(
        page.get_by_role("alert").filter(
            has_text="Prompt takes one input: remove its connection first."
        )
    ).to_be_visible()
    await expect(page.locator(".edge")).to_have_count(1)

    # a second video extends the first; extending the first from the second is a loop
    later = await tab.add_node("video")
    await tab.connect(video, later, "extend")
    await drag_from(later)
    await expect(tab.port(video, "extend")).to_have_class(has_class("port-incompatible"))
    await drop_on(f'.node[data-node-id="{video}"] .handle-in[data-port="extend"]')
    await expect(
        page.get_by_role("alert").filter(has_text="That connection would make a loop.")
    ).to_be_visible()
    await expect(page.locator(".edge")).to_have_count(2)
    count = await page.evaluate(
        "async (p) => (await (await fetch(`/api/projects/${p}/connections`)).json()).length",
        project_id,
    )
    assert count == 2


def has_class(name: str) -> re.Pattern[str]:
    """A pattern matching a class attribute that holds `name`."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")
