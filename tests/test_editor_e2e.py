"""The node editor in a real Chromium against the real app: selection, clipboard, undo/redo
across tabs, navigation, outputs, and the bugs a new user hit (issue 18)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Browser, Page, expect

from db.changes import Store
from tests.support.browser import CanvasPage, make_png, wait_until
from tests.support.workers import WorkerHarness

#: a job may wait for the worker's pickup and a CPU render: allow it this long, in ms
RENDER_WAIT_MS = 60_000
#: a point of the desktop canvas no node, tool or minimap covers in these tests
EMPTY = (720, 740)


def selected(page: Page) -> str:
    """Selector of the selected node wrappers."""
    return ".react-flow__node.selected"


async def center(tab: CanvasPage, node_id: str) -> tuple[float, float]:
    """The screen point in the middle of a node's title."""
    box = await tab.node(node_id).locator(".node-title").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def rows(store: Store, sql: str, **params: object) -> list[dict[str, object]]:
    """Rows of a query as dicts."""
    return [dict(r) for r in await store.db.fetch_all(sql, params)]


async def server_nodes(store: Store, project_id: str) -> list[dict[str, object]]:
    """The project's nodes as stored, with data decoded."""
    found = await rows(
        store,
        "SELECT id::text AS id, type::text AS type, x, y, data FROM nodes WHERE project_id = :p",
        p=project_id,
    )
    for r in found:
        if isinstance(r["data"], str):
            r["data"] = json.loads(r["data"])
    return found


async def count_connections(store: Store, project_id: str) -> int:
    """How many connections the project has in Postgres."""
    n = await store.db.fetch_val(
        "SELECT count(*) FROM connections WHERE project_id = :p", {"p": project_id}
    )
    return int(n)


async def test_click_shift_ctrl_click_marquee_then_move_and_delete_many(
    tab: CanvasPage, store: Store
) -> None:
    """Click, Shift-click, Ctrl-click and a Shift-drag marquee select; a drag moves them all; Delete removes them with Undo offered."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Selection")
    a, b, c = [await tab.add_node("prompt") for _ in range(3)]
    await page.mouse.click(*await center(tab, a))
    await expect(page.locator(selected(page))).to_have_count(1)
    await page.keyboard.down("Shift")
    await page.mouse.click(*await center(tab, b))
    await page.keyboard.up("Shift")
    await page.keyboard.down("Control")
    await page.mouse.click(*await center(tab, c))
    await page.keyboard.up("Control")
    await expect(page.locator(selected(page))).to_have_count(3)
    await page.mouse.click(*EMPTY)  # empty canvas clears the selection
    await expect(page.locator(selected(page))).to_have_count(0)

    # a marquee around a and b only (Shift-drag from empty canvas)
    boxes = [await tab.flow_node(n).bounding_box() for n in (a, b)]
    assert all(boxes)
    left = min(bx["x"] for bx in boxes if bx) - 20
    top = min(bx["y"] for bx in boxes if bx) - 20
    right = max(bx["x"] + bx["width"] for bx in boxes if bx) + 20
    bottom = max(bx["y"] + bx["height"] for bx in boxes if bx) + 20
    box_c = await tab.flow_node(c).bounding_box()
    assert box_c is not None
    if box_c["y"] < bottom and box_c["x"] < right:
        pytest.fail("the three prompts should not overlap: the layout put c inside a and b's box")
    await page.keyboard.down("Shift")
    await page.mouse.move(left, top)
    await page.mouse.down()
    for step in range(1, 11):
        await page.mouse.move(left + (right - left) * step / 10, top + (bottom - top) * step / 10)
    await page.mouse.up()
    await page.keyboard.up("Shift")
    await expect(page.locator(selected(page))).to_have_count(2)

    # dragging one moves both, and both moves are saved
    before = {n: await tab.node_position(n) for n in (a, b)}
    await tab.move_node(a, 100, 40)
    for n in (a, b):
        x, y = await tab.node_position(n)
        assert (x, y) == pytest.approx((before[n][0] + 100, before[n][1] + 40), abs=1)
    await wait_until(
        page,
        """async ([a, b, ax, bx]) => {
            const get = async (id) => (await (await fetch('/api/nodes/' + id)).json()).x;
            return Math.abs(await get(a) - ax) < 1 && Math.abs(await get(b) - bx) < 1;
        }""",
        arg=[a, b, before[a][0] + 100, before[b][0] + 100],
    )

    # Delete removes both, asks nothing, and offers Undo
    await page.keyboard.press("Delete")
    await expect(tab.nodes()).to_have_count(1)
    await expect(page.locator("#toasts").get_by_role("button", name="Undo")).to_be_visible()
    assert {r["id"] for r in await server_nodes(store, project_id)} == {c}


async def test_copy_paste_duplicate_within_and_into_another_project(
    tab: CanvasPage, store: Store
) -> None:
    """Ctrl+C/V/D copy nodes with their data and inner connections, paste at the pointer, and into a second project with the image copied."""
    page = tab.page
    await tab.sign_up()
    first = await tab.create_project("Source")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("Copied fox")
    await expect(tab.node(prompt).locator(".save-state")).to_have_text("Saved")
    image = await tab.add_node("image")
    await tab.upload_image(image, make_png(320, 180))
    video = await tab.add_node("video")
    await tab.connect(prompt, video)
    await tab.connect(image, video)

    await page.mouse.click(*EMPTY)
    await page.keyboard.press("Control+a")
    await expect(page.locator(".react-flow__node.selected")).to_have_count(3)
    await page.keyboard.press("Control+c")
    await expect(page.get_by_text("Copied 3 nodes.")).to_be_visible()

    # paste at the pointer: the group's top-left lands under it
    await page.mouse.move(900, 600)
    await page.keyboard.press("Control+v")
    await expect(tab.nodes()).to_have_count(6)
    await expect(page.locator(".edge")).to_have_count(4)
    pasted = [n for n in await tab.node_ids() if n not in {prompt, image, video}]
    tops = [await tab.flow_node(n).bounding_box() for n in pasted]
    assert min(t["x"] for t in tops if t) == pytest.approx(900, abs=2)
    assert min(t["y"] for t in tops if t) == pytest.approx(600, abs=2)
    stored = {r["id"]: r for r in await server_nodes(store, first)}
    assert sorted(str(stored[n]["type"]) for n in pasted) == ["image", "prompt", "video"]
    [copy_prompt] = [n for n in pasted if stored[n]["type"] == "prompt"]
    assert stored[copy_prompt]["data"] == {"prompt": "Copied fox"}
    assert await count_connections(store, first) == 4

    # duplicate: beside the selection (the pasted group is selected now)
    await page.keyboard.press("Control+d")
    await expect(tab.nodes()).to_have_count(9)
    await expect(page.locator(".edge")).to_have_count(6)

    # into another project of the same user: the image is copied to that project
    await page.get_by_role("link", name="All projects").click()
    second = await tab.create_project("Target")
    await page.mouse.move(500, 400)
    await page.keyboard.press("Control+v")
    await expect(tab.nodes()).to_have_count(3)
    await expect(page.locator(".edge")).to_have_count(2)
    target = await server_nodes(store, second)
    [img] = [r for r in target if r["type"] == "image"]
    assert isinstance(img["data"], dict)
    assert str(img["data"]["image_key"]).startswith(f"images/{second}/")
    await expect(page.locator("img.image-preview")).to_be_visible()
    await expect(page.locator(".node-video .input-value").first).to_have_text("Copied fox")


async def login_other(browser: Browser, base_url: str, email: str) -> CanvasPage:
    """A second browser (its own context) logged in as `email`."""
    other = await CanvasPage.open(browser, base_url)
    await other.log_in(email)
    return other


@pytest.mark.timeout(120)
async def test_undo_redo_of_delete_edit_move_connect_mirrors_in_a_second_tab(
    tab: CanvasPage, browser: Browser, store: Store
) -> None:
    """Undo/redo (toast, keys, buttons) of delete, edit, move and connect are server changes a second browser mirrors."""
    page = tab.page
    email = await tab.sign_up()
    project_id = await tab.create_project("Undo")
    prompt = await tab.add_node("prompt")
    video = await tab.add_node("video")
    await tab.node(prompt).get_by_label("Prompt text").fill("Fox in snow")
    await expect(tab.node(prompt).locator(".save-state")).to_have_text("Saved")
    await tab.connect(prompt, video)
    other = await login_other(browser, tab.base_url, email)
    await other.open_project(project_id)
    await expect(other.page.locator(".edge")).to_have_count(1)

    # delete the prompt (its connection goes with it); Undo in the toast brings both back
    await tab.node(prompt).get_by_role("button", name="Delete prompt node").click()
    await expect(other.nodes("prompt")).to_have_count(0)
    await expect(other.page.locator(".edge")).to_have_count(0)
    await page.locator("#toasts").get_by_role("button", name="Undo").click()
    await expect(other.nodes("prompt")).to_have_count(1)
    await expect(other.page.locator(".edge")).to_have_count(1)
    await expect(other.nodes("prompt").get_by_label("Prompt text")).to_have_value("Fox in snow")
    await expect(other.node(video).locator(".input-value").first).to_have_text("Fox in snow")
    [restored] = [r["id"] for r in await server_nodes(store, project_id) if r["type"] == "prompt"]
    assert await count_connections(store, project_id) == 1

    # redo the delete with the keyboard, then undo it with the toolbar button
    await page.mouse.click(*EMPTY)
    await page.keyboard.press("Control+Shift+z")
    await expect(other.nodes("prompt")).to_have_count(0)
    await page.get_by_role("toolbar").get_by_role("button", name=re.compile("^Undo")).click()
    await expect(other.nodes("prompt")).to_have_count(1)
    [again] = [str(r["id"]) for r in await server_nodes(store, project_id) if r["type"] == "prompt"]
    assert again != restored  # a re-created node, and the stack followed its new id

    # move, then undo the move
    before = await tab.node_position(again)
    await tab.move_node(again, 140, 0)
    await expect(other.flow_node(again)).to_have_attribute("style", re.compile(r"translate\("))
    await wait_until(
        page,
        """async ([id, x]) => Math.abs((await (await fetch('/api/nodes/' + id)).json()).x - x) < 1""",
        arg=[again, before[0] + 140],
    )
    await page.mouse.click(*EMPTY)
    await page.keyboard.press("Control+z")
    await other.page.wait_for_function(
        """([id, x]) => {
            const el = document.querySelector(`.react-flow__node[data-id="${id}"]`);
            return el && Math.abs(new DOMMatrix(getComputedStyle(el).transform).e - x) < 1;
        }""",
        arg=[again, before[0]],
    )

    # edit the text, undo it, redo it with the button
    await tab.node(again).get_by_label("Prompt text").fill("Wolf in snow")
    await expect(other.node(again).get_by_label("Prompt text")).to_have_value("Wolf in snow")
    await page.mouse.click(*EMPTY)
    await page.keyboard.press("Control+z")
    await expect(other.node(again).get_by_label("Prompt text")).to_have_value("Fox in snow")
    await page.get_by_role("toolbar").get_by_role("button", name=re.compile("^Redo")).click()
    await expect(other.node(again).get_by_label("Prompt text")).to_have_value("Wolf in snow")
    other.assert_no_errors()


async def test_undo_skips_what_someone_else_changed_since(
    tab: CanvasPage, browser: Browser
) -> None:
    """Undoing an edit that another browser has since overwritten is skipped with a notice, keeping their text."""
    page = tab.page
    email = await tab.sign_up()
    project_id = await tab.create_project("Conflict")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("Mine")
    await expect(tab.node(prompt).locator(".save-state")).to_have_text("Saved")
    other = await login_other(browser, tab.base_url, email)
    await other.open_project(project_id)
    await other.node(prompt).get_by_label("Prompt text").fill("Theirs")
    await expect(other.node(prompt).locator(".save-state")).to_have_text("Saved")
    await expect(tab.node(prompt).get_by_label("Prompt text")).to_have_value("Theirs")
    await page.mouse.click(*EMPTY)
    await page.keyboard.press("Control+z")
    await expect(page.get_by_text(re.compile("someone else changed it since"))).to_be_visible()
    await expect(tab.node(prompt).get_by_label("Prompt text")).to_have_value("Theirs")
    await expect(other.node(prompt).get_by_label("Prompt text")).to_have_value("Theirs")
    other.assert_no_errors()


async def add_node_by_api(page: Page, project_id: str, kind: str, x: float, y: float) -> str:
    """Create a node through the REST API from the page (its cookie); returns its id."""
    node_id = await page.evaluate(
        """async ([p, type, x, y]) => {
            const r = await fetch(`/api/projects/${p}/nodes`, {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({type, x, y})});
            return (await r.json()).id;
        }""",
        [project_id, kind, x, y],
    )
    return str(node_id)


async def in_view(tab: CanvasPage, node_id: str) -> bool:
    """Whether the node's card lies inside the canvas area of the window."""
    box = await tab.flow_node(node_id).bounding_box()
    pane = await tab.page.locator(".react-flow").bounding_box()
    assert box is not None and pane is not None
    return (
        box["x"] >= pane["x"]
        and box["y"] >= pane["y"]
        and box["x"] + box["width"] <= pane["x"] + pane["width"]
        and box["y"] + box["height"] <= pane["y"] + pane["height"]
    )


async def test_minimap_zoom_to_selection_and_new_nodes_in_view(tab: CanvasPage) -> None:
    """A far node is found through the minimap, zoom to selection frames it, and toolbar nodes land in view after a pan."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Far away")
    await tab.add_node("prompt")
    far = await add_node_by_api(page, project_id, "video", 4000, 2600)
    await expect(tab.nodes()).to_have_count(2)
    assert not await in_view(tab, far)

    # the minimap draws a rect per node; a click on the far one goes there
    rects = page.locator(".react-flow__minimap-node")
    await expect(rects).to_have_count(2)
    box = await rects.nth(1).bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.wait_for_function(
        """id => {
            const el = document.querySelector(`.react-flow__node[data-id="${id}"]`).getBoundingClientRect();
            return el.left > 0 && el.right < innerWidth && el.top > 56 && el.top < innerHeight;
        }""",
        arg=far,
    )

    # zoom to selection frames the selected node in the middle. The minimap click centred it
    # already at the old zoom, so the zoom changing is what shows the framing happened; React
    # Flow applies fitView on a later frame, so the test waits for it rather than reading at once.
    await page.mouse.click(*await center(tab, far))
    zoom = page.locator(".zoom-label")
    before = await zoom.text_content()
    await page.get_by_role("button", name="Zoom to selection").click()
    await expect(zoom).not_to_have_text(before or "")
    print(f"zoom to selection: {before} -> {await zoom.text_content()}")
    box = await tab.flow_node(far).bounding_box()
    pane = await page.locator(".react-flow").bounding_box()
    assert box is not None and pane is not None
    assert box["x"] + box["width"] / 2 == pytest.approx(pane["x"] + pane["width"] / 2, abs=4)
    assert box["y"] + box["height"] / 2 == pytest.approx(pane["y"] + pane["height"] / 2, abs=4)

    # pan somewhere empty; a node added from the toolbar appears in view
    await page.mouse.move(*EMPTY)
    await page.mouse.down()
    for step in range(1, 11):
        await page.mouse.move(EMPTY[0] - 50 * step, EMPTY[1] - 50 * step)
    await page.mouse.up()
    added = await tab.add_node("image")
    assert await in_view(tab, added)


async def test_context_menu_and_double_click_add_a_node_there(tab: CanvasPage) -> None:
    """Right-click or double-click on empty canvas opens a menu that adds a node at that point; Shift+F10 and Escape work from the keyboard."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Menus")
    await page.mouse.click(600, 420, button="right")
    menu = page.get_by_role("menu", name="Canvas menu")
    await expect(menu).to_be_visible()
    await menu.get_by_role("menuitem", name="Add video node here").click()
    await expect(tab.nodes("video")).to_have_count(1)
    [video] = await tab.node_ids()
    box = await tab.flow_node(video).bounding_box()
    assert box is not None and (box["x"], box["y"]) == pytest.approx((600, 420), abs=2)

    await page.mouse.dblclick(250, 560)
    await expect(menu).to_be_visible()
    await expect(menu.get_by_role("menuitem").first).to_be_focused()
    await page.keyboard.press("Enter")  # the first item: a prompt node
    await expect(tab.nodes("prompt")).to_have_count(1)
    prompt = (await tab.node_ids())[-1]
    box = await tab.flow_node(prompt).bounding_box()
    assert box is not None and (box["x"], box["y"]) == pytest.approx((250, 560), abs=2)
    await expect(tab.node(prompt).get_by_label("Prompt text")).to_be_focused()

    await page.locator("#viewport").focus()
    await page.keyboard.press("Shift+F10")
    await expect(menu).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(menu).to_have_count(0)


async def test_dropping_an_image_file_anywhere_makes_an_image_node(tab: CanvasPage) -> None:
    """An image file dropped on empty canvas becomes an image node there, showing the upload."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Drop")
    png = list(make_png(200, 120))
    await page.evaluate(
        """([bytes, x, y]) => {
            const file = new File([new Uint8Array(bytes)], 'dropped.png', {type: 'image/png'});
            const dt = new DataTransfer();
            dt.items.add(file);
            const target = document.elementFromPoint(x, y);
            for (const type of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, clientX: x, clientY: y, bubbles: true, cancelable: true}));
            }
        }""",
        [png, 640, 400],
    )
    await expect(tab.nodes("image")).to_have_count(1)
    [image] = await tab.node_ids()
    box = await tab.flow_node(image).bounding_box()
    assert box is not None and (box["x"], box["y"]) == pytest.approx((640, 400), abs=2)
    await page.wait_for_function(
        "() => { const i = document.querySelector('img.image-preview'); return i && i.complete && i.naturalWidth === 200; }"
    )


async def test_arrow_keys_move_the_selection_and_question_mark_lists_shortcuts(
    tab: CanvasPage, store: Store
) -> None:
    """Arrow keys move every selected node (saved, one undo for the burst); ? opens the list of shortcuts."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Keys")
    a = await tab.add_node("prompt")
    b = await tab.add_node("prompt")
    before = {n: await tab.node_position(n) for n in (a, b)}
    await page.locator("#viewport").focus()
    await page.keyboard.press("Control+a")
    for _ in range(3):
        await page.keyboard.press("ArrowRight")
    await page.keyboard.press("Shift+ArrowDown")
    for n in (a, b):
        assert await tab.node_position(n) == pytest.approx(
            (before[n][0] + 30, before[n][1] + 40), abs=0.5
        )
    await wait_until(
        page,
        """async ([p, a, ax]) => {
            const nodes = await (await fetch(`/api/projects/${p}/nodes`)).json();
            return Math.abs(nodes.find(n => n.id === a).x - ax) < 0.5;
        }""",
        arg=[project_id, a, before[a][0] + 30],
    )
    await page.keyboard.press("Control+z")  # the whole burst at once
    await wait_until(
        page,
        """async ([p, a, ax, ay]) => {
            const nodes = await (await fetch(`/api/projects/${p}/nodes`)).json();
            const n = nodes.find(n => n.id === a);
            return Math.abs(n.x - ax) < 0.5 && Math.abs(n.y - ay) < 0.5;
        }""",
        arg=[project_id, a, before[a][0], before[a][1]],
    )
    await expect(page.get_by_text("Undid move 2 nodes.")).to_be_visible()
    stored = {r["id"]: (r["x"], r["y"]) for r in await server_nodes(store, project_id)}
    assert stored[b] == pytest.approx(before[b], abs=0.5)

    await page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(dialog).to_be_visible()
    for text in (
        "Undo your last change",
        "Paste at the pointer",
        "Select with a rectangle",
        "Zoom to the selection",
    ):
        await expect(dialog).to_contain_text(text)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()


async def wait_for_video(tab: CanvasPage, node_id: str) -> None:
    """Wait until the node's <video> has a decoded frame and a duration."""
    await (
        tab.node(node_id)
        .locator("video")
        .evaluate(
            """v => new Promise((resolve, reject) => {
            const ok = () => v.readyState >= 2 && v.duration > 0;
            if (ok()) return resolve();
            v.addEventListener('loadeddata', () => ok() && resolve());
            v.addEventListener('error', () => reject(new Error('video error')));
        })"""
        )
    )


@pytest.mark.timeout(180)
async def test_video_outputs_download_poster_stale_inputs_and_honest_labels(
    tab: CanvasPage, worker: WorkerHarness
) -> None:
    """Generate moves focus to Cancel and back; the clip downloads, says what it was made with through a regenerate, a cancel and a reload, flags changed inputs, and becomes the project's poster."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Outputs")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("A lighthouse at dusk")
    video = await tab.add_node("video")
    await tab.connect(prompt, video)
    node = tab.node(video)
    await node.get_by_label("Duration").select_option("4")
    await node.get_by_role("button", name="Generate").click()
    await expect(node.get_by_role("button", name="Cancel")).to_be_focused()
    await expect(node.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    await wait_for_video(tab, video)
    await expect(node.locator(".video-meta")).to_have_text("720p · 4 s · 16:9")
    async with page.expect_download() as download:
        await node.get_by_role("link", name="Download video").click()
    assert (await download.value).suggested_filename.endswith(".mp4")

    # inputs changed since: the node says so
    await tab.node(prompt).get_by_label("Prompt text").fill("A lighthouse at dawn")
    await expect(node.locator(".clip-stale")).to_contain_text(
        "Inputs changed since this video was made"
    )

    # new settings, Regenerate, Cancel: the old clip is labelled as what it is throughout
    # 1080p is made as 8 s clips only (Veo 3.1): choosing it brings 8 s and says why
    await node.get_by_label("Resolution").select_option("1080p")
    await expect(node.get_by_label("Duration")).to_have_value("8")
    await expect(node.get_by_label("Duration").locator("option")).to_have_count(1)
    await expect(node.locator(".constraint-note")).to_have_text("1080p is made as 8 s clips only.")
    await expect(node.locator(".clip-notice").first).to_contain_text("Made with 720p · 4 s · 16:9")
    await node.get_by_role("button", name="Regenerate").click()
    await expect(node.locator(".clip-notice").first).to_contain_text(
        "Showing the previous video (720p · 4 s · 16:9)"
    )
    await expect(node.locator(".video-meta")).to_have_text("720p · 4 s · 16:9")
    await node.get_by_role("button", name="Cancel").click()
    await expect(node.locator(".badge")).to_have_text("Cancelled")
    await expect(node.get_by_role("button", name="Regenerate")).to_be_focused()
    await expect(node.locator(".video-meta")).to_have_text("720p · 4 s · 16:9")
    await page.reload()
    await tab.wait_live()
    await expect(tab.node(video).locator(".video-meta")).to_have_text("720p · 4 s · 16:9")
    await expect(tab.node(video).locator(".clip-notice").first).to_contain_text(
        "settings have changed"
    )

    # the project list shows the clip as the project's poster
    await page.get_by_role("link", name="All projects").click()
    poster = page.locator(".project-card video.project-poster")
    await expect(poster).to_have_count(1)
    assert (await poster.get_attribute("src") or "").startswith(tab.base_url + "/media/videos/")


@pytest.mark.timeout(120)
async def test_thirty_node_walkthrough_with_a_second_browser_mirroring(
    tab: CanvasPage, browser: Browser, store: Store
) -> None:
    """On a 30-node project: a marquee group is copied into a second project, a delete is undone and redone in both browsers, and the minimap finds a far node."""
    page = tab.page
    email = await tab.sign_up()
    project_id = await tab.create_project("Thirty")
    ids = []
    for i in range(30):
        kind = ("prompt", "image", "video")[i % 3]
        ids.append(
            await add_node_by_api(page, project_id, kind, 60 + 340 * (i % 6), 60 + 460 * (i // 6))
        )
    for i in range(0, 30, 3):
        status = await page.evaluate(
            """async ([p, s, t]) => (await fetch(`/api/projects/${p}/connections`, {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({source_id: s, target_id: t})})).status""",
            [project_id, ids[i], ids[i + 2]],
        )
        assert status == 201
    await expect(tab.nodes()).to_have_count(30)
    await expect(page.locator(".edge")).to_have_count(10)
    other = await login_other(browser, tab.base_url, email)
    await other.open_project(project_id)
    await expect(other.nodes()).to_have_count(30)

    # a marquee around the first two columns of the first row, at 100 %
    first = await tab.flow_node(ids[0]).bounding_box()
    second = await tab.flow_node(ids[1]).bounding_box()
    assert first is not None and second is not None
    await page.keyboard.down("Shift")
    await page.mouse.move(first["x"] - 10, first["y"] - 10)
    await page.mouse.down()
    x1, y1 = (
        second["x"] + second["width"] + 10,
        max(first["y"] + first["height"], second["y"] + second["height"]) + 10,
    )
    for step in range(1, 9):
        await page.mouse.move(
            first["x"] - 10 + (x1 - first["x"] + 10) * step / 8,
            first["y"] - 10 + (y1 - first["y"] + 10) * step / 8,
        )
    await page.mouse.up()
    await page.keyboard.up("Shift")
    await expect(page.locator(".react-flow__node.selected")).to_have_count(2)
    await page.keyboard.press("Control+c")

    # into a second project, at the pointer
    target = await page.evaluate(
        """async () => (await (await fetch('/api/projects', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'Copy'})})).json()).id"""
    )
    await tab.open_project(str(target))
    await page.mouse.move(400, 300)
    await page.keyboard.press("Control+v")
    await expect(tab.nodes()).to_have_count(2)
    assert sorted(str(r["type"]) for r in await server_nodes(store, str(target))) == [
        "image",
        "prompt",
    ]

    # back on the big project: delete one, undo, redo, mirrored
    await tab.open_project(project_id)
    await expect(tab.nodes()).to_have_count(30)
    await page.mouse.click(*await center(tab, ids[0]))
    await page.keyboard.press("Delete")
    await expect(other.nodes()).to_have_count(29)
    await expect(other.page.locator(".edge")).to_have_count(9)
    await page.keyboard.press("Control+z")
    await expect(other.nodes()).to_have_count(30)
    await expect(other.page.locator(".edge")).to_have_count(10)
    await page.keyboard.press("Control+Shift+z")
    await expect(other.nodes()).to_have_count(29)

    # the minimap finds the last node, far down the canvas
    rects = page.locator(".react-flow__minimap-node")
    await expect(rects).to_have_count(29)
    box = await rects.last.bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.wait_for_function(
        """id => {
            const el = document.querySelector(`.react-flow__node[data-id="${id}"]`).getBoundingClientRect();
            return el.left > 0 && el.right < innerWidth && el.top > 56 && el.bottom < innerHeight;
        }""",
        arg=ids[-1],
    )
    other.assert_no_errors()
