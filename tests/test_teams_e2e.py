"""Teams on one canvas (issue 15) in real Chromium: two people in two browser contexts, sharing, presence, roles and conflicts."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Response, WebSocketRoute, expect

from tests.support.browser import CanvasPage, wait_until
from tests.support.servers import ServerThread
from tests.support.workers import WorkerHarness

#: a job may wait for the worker's pickup and a CPU render: allow it this long, in ms
RENDER_WAIT_MS = 60_000


@pytest.fixture
async def pair(
    browser: Browser, server: ServerThread
) -> AsyncIterator[tuple[CanvasPage, CanvasPage]]:
    """Two people signed up in two browser contexts (own cookies); fails on any page error."""
    ann = await CanvasPage.open(browser, server.base_url)
    ben = await CanvasPage.open(browser, server.base_url)
    await ann.sign_up("ann@example.com")
    await ben.sign_up("ben@example.com")
    yield ann, ben
    ann.assert_no_errors()
    ben.assert_no_errors()


async def share(owner: CanvasPage, email: str, role: str) -> None:
    """Add `email` with `role` through the Share dialog, and close it."""
    page = owner.page
    await page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share this project")
    await dialog.get_by_label("Add by email").fill(email)
    await dialog.get_by_label("Role for the new member").select_option(role)
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog.locator(".share-note")).to_have_text(f"Added {email} as {role}.")
    await expect(dialog.locator(".member", has_text=email)).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()


async def shared_project(ann: CanvasPage, ben: CanvasPage, role: str = "editor") -> str:
    """Ann's new project, shared with Ben as `role` and open in both tabs; returns its id."""
    project_id = await ann.create_project("Together")
    await share(ann, "ben@example.com", role)
    await ben.page.reload()
    card = ben.page.locator(".project-card", has_text="Together")
    await expect(card).to_contain_text(f"shared with you ({role})")
    await expect(card.get_by_role("button", name="Delete Together")).to_have_count(0)
    await ben.open_project(project_id)
    return project_id


async def same_position(a: CanvasPage, b: CanvasPage, node_id: str) -> tuple[float, float]:
    """Wait until both tabs draw the node where the server has it; returns that place."""
    for tab in (a, b):
        await wait_until(
            tab.page,
            """async (id) => {
                const n = await (await fetch(`/api/nodes/${id}`)).json();
                const el = document.querySelector(`.react-flow__node[data-id="${id}"]`);
                if (!el) return false;
                const m = new DOMMatrix(getComputedStyle(el).transform);
                return Math.abs(m.e - n.x) < 0.5 && Math.abs(m.f - n.y) < 0.5;
            }""",
            node_id,
        )
    pa, pb = await a.node_position(node_id), await b.node_position(node_id)
    assert pa == pytest.approx(pb, abs=0.5)
    return pa


@pytest.mark.timeout(180)
async def test_owner_and_editor_see_each_others_moves_edits_connects_and_generation(
    pair: tuple[CanvasPage, CanvasPage], worker: WorkerHarness
) -> None:
    """Shared as editor, Ben sees every change Ann makes and she sees his, a generation by each included, with who started it."""
    ann, ben = pair
    await shared_project(ann, ben)
    # each sees the other here
    await expect(ann.page.get_by_role("listitem", name="ben@example.com")).to_be_visible()
    await expect(ben.page.get_by_role("listitem", name="ann@example.com")).to_be_visible()

    prompt = await ann.add_node("prompt")
    await expect(ben.node(prompt)).to_be_visible()
    await ben.node(prompt).get_by_label("Prompt text").fill("A heron lifts off a misty lake")
    await expect(ann.node(prompt).get_by_label("Prompt text")).to_have_value(
        "A heron lifts off a misty lake"
    )
    video = await ben.add_node("video")
    await expect(ann.node(video)).to_be_visible()
    await ann.connect(prompt, video)
    await expect(ben.page.locator(".edge")).to_have_count(1)

    await ann.move_node(prompt, 0, 160)
    await same_position(ann, ben, prompt)
    await ben.move_node(video, 80, 0)
    await same_position(ann, ben, video)

    await ben.node(video).get_by_label("Duration").select_option("4")
    await expect(ann.node(video).get_by_label("Duration")).to_have_value("4")
    await ben.node(video).get_by_role("button", name="Generate").click()
    for tab in (ann, ben):
        await expect(tab.node(video).locator(".badge")).to_have_text(
            "Completed", timeout=RENDER_WAIT_MS
        )
        await expect(tab.node(video).locator(".created-by")).to_have_text(
            "Started by ben@example.com"
        )
        await expect(tab.node(video).locator("video.video-preview")).to_have_count(1)
    # and one by Ann: both see her as its author, and the node now holds two takes
    await ann.node(video).get_by_role("button", name="Regenerate").click()
    for tab in (ann, ben):
        await expect(tab.node(video).locator(".created-by")).to_have_text(
            "Started by ann@example.com", timeout=RENDER_WAIT_MS
        )
        await expect(tab.node(video).locator(".badge")).to_have_text(
            "Completed", timeout=RENDER_WAIT_MS
        )
        await expect(tab.node(video).locator(".take")).to_have_count(2)


async def test_concurrent_moves_of_one_node_converge(pair: tuple[CanvasPage, CanvasPage]) -> None:
    """Ann and Ben drag the same node at the same time: both tabs and the database end on one place."""
    ann, ben = pair
    await shared_project(ann, ben)
    node = await ann.add_node("prompt")
    await expect(ben.node(node)).to_be_visible()
    for dx, dy in ((120, 0), (-60, 90), (30, -40)):
        await asyncio.gather(ann.move_node(node, dx, dy), ben.move_node(node, -dy, dx))
        await same_position(ann, ben, node)


@pytest.mark.timeout(120)
async def test_a_stale_prompt_edit_gets_409_and_the_canvas_recovers_without_a_reload(
    pair: tuple[CanvasPage, CanvasPage],
) -> None:
    """Ann's edit made on an old version is refused with 409: a move in between is rebased silently; a rival text shows both versions, and keeping both saves them for everyone, all without a reload."""
    ann, ben = pair
    await shared_project(ann, ben)
    prompt = await ann.add_node("prompt")
    text = ann.node(prompt).get_by_label("Prompt text")
    await text.fill("a fox")
    await expect(ben.node(prompt).get_by_label("Prompt text")).to_have_value("a fox")
    conflicts: list[int] = []

    def on_response(response: Response) -> None:
        if response.request.method == "PATCH" and response.status == 409:
            conflicts.append(response.status)

    ann.page.on("response", on_response)
    await ann.page.evaluate("window.cfNoReload = true")

    # 1. offline, Ann types; meanwhile Ben only moves the node: her edit is resent on the new version
    await ann.context.set_offline(True)
    await text.fill("a fox in the snow")
    await expect(ann.node(prompt).locator(".save-state")).to_contain_text("Offline")
    await ben.move_node(prompt, 40, 40)
    await ann.context.set_offline(False)
    await expect(ann.node(prompt).locator(".save-state")).to_have_text("Saved")
    await expect(ben.node(prompt).get_by_label("Prompt text")).to_have_value("a fox in the snow")
    assert len(conflicts) == 1, "the stale write was refused once, then rebased"
    await expect(ann.node(prompt).get_by_role("alert", name="Edit conflict")).to_have_count(0)
    await same_position(ann, ben, prompt)

    # 2. offline, Ann types; Ben changes the same text: both versions are shown to Ann
    await ann.context.set_offline(True)
    await text.fill("a fox in the snow, by Ann")
    await expect(ann.node(prompt).locator(".save-state")).to_contain_text("Offline")
    await ben.node(prompt).get_by_label("Prompt text").fill("a red fox, by Ben")
    await expect(ben.node(prompt).locator(".save-state")).to_have_text("Saved")
    await ann.context.set_offline(False)
    panel = ann.node(prompt).get_by_role("alert", name="Edit conflict")
    await expect(panel).to_be_visible()
    await expect(panel.locator(".conflict-mine")).to_have_text("a fox in the snow, by Ann")
    await expect(panel.locator(".conflict-theirs")).to_have_text("a red fox, by Ben")
    assert len(conflicts) == 2
    await expect(text).to_have_value("a fox in the snow, by Ann")  # nothing lost
    await panel.get_by_role("button", name="Keep both").click()
    merged = "a fox in the snow, by Ann\n\na red fox, by Ben"
    await expect(text).to_have_value(merged)
    await expect(ann.node(prompt).locator(".save-state")).to_have_text("Saved")
    await expect(ben.node(prompt).get_by_label("Prompt text")).to_have_value(merged)
    assert await ann.page.evaluate("window.cfNoReload === true"), "the page was not reloaded"


async def test_a_viewer_sees_no_edit_controls_until_promoted_and_joins_by_invite_link(
    browser: Browser, server: ServerThread, pair: tuple[CanvasPage, CanvasPage]
) -> None:
    """Cy joins by a viewer invitation link and sees no edit or Generate controls; promoted, they appear at once; demoted, they go."""
    ann, _ben = pair
    project_id = await ann.create_project("Storyboard")
    prompt = await ann.add_node("prompt")
    await ann.node(prompt).get_by_label("Prompt text").fill("A lantern in the rain")
    video = await ann.add_node("video")
    await ann.connect(prompt, video)
    image = await ann.add_node("image")

    page = ann.page
    await page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share this project")
    await dialog.get_by_label("Invitation link", exact=True).select_option("viewer")
    await dialog.get_by_role("button", name="Create link").click()
    url = await dialog.get_by_label("Invitation link to copy").input_value()
    assert "?invite=" in url
    await dialog.get_by_role("button", name="Copy link").click()
    await expect(dialog.locator(".share-note")).to_have_text(
        "Link copied: it admits one person, once."
    )
    await ann.screenshot("share")
    await dialog.get_by_role("button", name="Close").click()

    cy = await CanvasPage.open(browser, server.base_url)
    try:
        await cy.page.goto(url)
        await cy.page.get_by_role("link", name="Create an account").click()
        await cy.page.get_by_label("Email").fill("cy@example.com")
        await cy.page.get_by_label("Password").fill("correct horse battery")
        await cy.page.get_by_role("button", name="Create account").click()
        await cy.page.wait_for_url(f"**/#/p/{project_id}")
        await cy.wait_live()
        await expect(cy.page.get_by_text("You joined “Storyboard” as viewer.")).to_be_visible()

        await expect(cy.node(video)).to_be_visible()
        await expect(cy.page.get_by_role("note")).to_have_text(
            "View only: you are a viewer of this project"
        )
        await expect(cy.page.locator("#add-prompt")).to_have_count(0)
        await expect(cy.page.locator("#undo")).to_have_count(0)
        await expect(cy.node(video).get_by_role("button", name="Generate")).to_have_count(0)
        await expect(cy.page.locator(".node-delete")).to_have_count(0)
        await expect(cy.node(video).locator("select")).to_have_count(0)
        await expect(cy.node(image).get_by_role("button", name="Upload image")).to_have_count(0)
        await expect(cy.node(image)).to_contain_text("No image yet")
        await expect(cy.node(prompt).get_by_label("Prompt text")).to_have_attribute("readonly", "")
        # Ann sees Cy here
        await expect(ann.page.get_by_role("listitem", name="cy@example.com")).to_be_visible()

        # promoted: the controls appear at once, without a reload
        await page.get_by_role("button", name="Share").click()
        await dialog.get_by_label("Role of cy@example.com").select_option("editor")
        await expect(dialog.locator(".share-note")).to_have_text("cy@example.com is now editor.")
        await expect(cy.node(video).get_by_role("button", name="Generate")).to_be_visible()
        await expect(cy.page.locator("#add-prompt")).to_have_count(1)
        await expect(cy.node(prompt).get_by_label("Prompt text")).not_to_have_attribute(
            "readonly", ""
        )
        # demoted again: gone again, and the subscription lives on (a later change still arrives)
        await dialog.get_by_label("Role of cy@example.com").select_option("viewer")
        await expect(cy.node(video).get_by_role("button", name="Generate")).to_have_count(0)
        await expect(cy.page.locator("#add-prompt")).to_have_count(0)
        await dialog.get_by_role("button", name="Close").click()
        await ann.node(prompt).get_by_label("Prompt text").fill("A lantern in the snow")
        await expect(cy.node(prompt).get_by_label("Prompt text")).to_have_value(
            "A lantern in the snow"
        )
        await expect(cy.page.locator('#link-status[data-state="live"]')).to_be_visible()
        cy.assert_no_errors()
    finally:
        await cy.context.close()


async def test_presence_cursor_selection_and_editing_marker_come_and_go(
    pair: tuple[CanvasPage, CanvasPage],
) -> None:
    """Ben's avatar, live cursor, selection and "is editing" marker show on Ann's canvas, and all go when his tab closes."""
    ann, ben = pair
    await shared_project(ann, ben)
    prompt = await ann.add_node("prompt")
    await expect(ben.node(prompt)).to_be_visible()
    avatar = ann.page.get_by_role("listitem", name="ben@example.com")
    await expect(avatar).to_be_visible()

    cursor = ann.page.locator(".remote-cursor", has_text="ben@example.com")
    await ben.page.mouse.move(700, 500)
    await ben.page.mouse.move(760, 540, steps=8)
    await expect(cursor).to_be_visible()
    first = await cursor.evaluate("el => el.style.transform")
    await ben.page.mouse.move(900, 620, steps=8)
    await wait_until(
        ann.page,
        "(before) => document.querySelector('.remote-cursor').style.transform !== before",
        first,
    )

    await ben.node(prompt).get_by_label("Prompt text").click()
    await expect(ann.flow_node(prompt)).to_have_class(re.compile(r"remote-selected"))
    await expect(ann.node(prompt).locator(".editing-marker")).to_have_text(
        "ben@example.com is editing this prompt"
    )
    await ben.page.mouse.move(560, 420, steps=4)
    await expect(cursor).to_be_visible()
    await ann.screenshot("presence")
    await ben.page.locator(".react-flow__pane").click(position={"x": 900, "y": 650})
    await expect(ann.node(prompt).locator(".editing-marker")).to_have_count(0)

    await ben.page.close()
    await expect(avatar).to_have_count(0)
    await expect(cursor).to_have_count(0)
    await expect(ann.flow_node(prompt)).not_to_have_class(re.compile(r"remote-selected"))


async def test_a_removed_member_is_told_and_leaves_the_canvas(
    pair: tuple[CanvasPage, CanvasPage],
) -> None:
    """The owner removes Ben in the Share dialog: Ben's canvas says so and goes back to his projects, which no longer list it."""
    ann, ben = pair
    await shared_project(ann, ben)
    page = ann.page
    await page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share this project")
    await dialog.get_by_role("button", name="Remove ben@example.com").click()
    await expect(dialog.locator(".share-note")).to_have_text("Removed ben@example.com.")
    await expect(dialog.locator(".member", has_text="ben@example.com")).to_have_count(0)
    await expect(
        ben.page.get_by_text("You were removed from this project: it is no longer shared with you.")
    ).to_be_visible()
    await expect(ben.page.get_by_role("heading", name="Projects")).to_be_visible()
    await expect(ben.page.locator(".project-card", has_text="Together")).to_have_count(0)
    await expect(page.get_by_role("listitem", name="ben@example.com")).to_have_count(0)


async def test_a_forbidden_role_frame_is_shown_and_the_canvas_stays_live(
    pair: tuple[CanvasPage, CanvasPage],
) -> None:
    """An `error forbidden_role` frame on the socket is shown as an error, and the viewer's subscription goes on: later changes still arrive."""
    ann, ben = pair
    project_id = await ann.create_project("Refusals")
    prompt = await ann.add_node("prompt")
    await share(ann, "ben@example.com", "viewer")
    routes: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # every frame passes both ways; the test adds one
        routes.append(ws)

    await ben.page.route_web_socket(re.compile(r"/ws$"), through)
    await ben.open_project(project_id)
    assert routes, "the canvas's websocket went through the route"
    message = "As a viewer you may not change this project."
    frame = {
        "type": "error",
        "code": "forbidden_role",
        "message": message,
        "project_id": project_id,
    }
    routes[-1].send(json.dumps(frame))
    await expect(ben.page.locator("#toasts .toast", has_text=message)).to_be_visible()
    await expect(ben.page.locator('#link-status[data-state="live"]')).to_be_visible()
    await ann.node(prompt).get_by_label("Prompt text").fill("Still live after a refusal")
    await expect(ben.node(prompt).get_by_label("Prompt text")).to_have_value(
        "Still live after a refusal"
    )
    await expect(ben.page).to_have_url(re.compile(rf"#/p/{project_id}$"))
