"""The canvas in a real Chromium against the real app: uvicorn, Postgres, Redis, an arq worker."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from db.changes import Store
from tasks.storage.auto import make_storage
from tasks.storage.local import LocalStorage
from tests.support.browser import (
    CONTRAST_FAILURES_JS,
    PASSWORD,
    UNLABELLED_JS,
    CanvasPage,
    make_png,
    wait_until,
)
from tests.support.servers import ServerThread
from tests.support.services import Services, settings_for
from tests.support.workers import WorkerHarness

PROMPT = "A red fox trotting through snowy pines at dawn, cinematic light"
#: a job may wait for the worker's pickup and a CPU render: allow it this long, in ms (an 8 s
#: 1080p render took over a minute while other suites loaded both cores)
RENDER_WAIT_MS = 150_000


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
    await page.get_by_role("link", name="Open Launch teaser").click()
    await tab.wait_live()
    await expect(page.locator("#project-name")).to_have_value("Launch teaser")


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
    spare_video = await tab.add_node("video")
    await tab.connect(prompt, video)
    await tab.connect(image, video)
    await tab.connect(spare, spare_video)
    await expect(tab.node(video).locator(".input-value").first).to_have_text(
        "A red fox trotting through snowy pines at dawn"
    )

    # delete the spare image's connection: click the curve, press Delete
    await tab.click_edge(2)
    await expect(page.locator(".edge.selected")).to_have_count(1)
    assert await page.locator(".edge.selected").get_attribute("data-connection-id") == (
        await page.locator(".edge").nth(2).get_attribute("data-connection-id")
    )
    await page.keyboard.press("Delete")
    await expect(page.locator(".edge")).to_have_count(2)
    # then the spare nodes themselves with their delete buttons (no question asked)
    await tab.node(spare).get_by_role("button", name="Delete prompt node").click()
    await tab.node(spare_video).get_by_role("button", name="Delete video node").click()
    await expect(tab.nodes()).to_have_count(3)

    before = await tab.node_position(video)
    await tab.move_node(video, 120, 60)
    moved = await tab.node_position(video)
    assert moved[0] == pytest.approx(before[0] + 120, abs=1)
    assert moved[1] == pytest.approx(before[1] + 60, abs=1)
    await expect(tab.node(prompt).locator(".save-state")).to_have_text("Saved")
    await wait_until(
        page,
        f"""async () => {{
            const n = await (await fetch('/api/nodes/{video}')).json();
            return Math.abs(n.x - {moved[0]}) < 1 && Math.abs(n.y - {moved[1]}) < 1;
        }}""",
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


async def test_pan_and_zoom(tab: CanvasPage) -> None:
    """Dragging the background pans, the buttons and the wheel zoom, and the view survives a reload."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Wide shot")
    node = tab.node(await tab.add_node("prompt"))
    start = await node.bounding_box()
    assert start is not None

    # pan: press on empty canvas, drag by (200, 120)
    await page.mouse.move(700, 400)
    await page.mouse.down()
    for step in range(1, 11):
        await page.mouse.move(700 + 20 * step, 400 + 12 * step)
    await page.mouse.up()
    panned = await node.bounding_box()
    assert panned is not None
    assert (panned["x"] - start["x"], panned["y"] - start["y"]) == pytest.approx((200, 120), abs=1)

    await page.get_by_role("button", name="Zoom in").click()
    await expect(page.locator(".zoom-label")).to_have_text("120%")
    zoomed = await node.bounding_box()
    assert zoomed is not None and zoomed["width"] == pytest.approx(panned["width"] * 1.2, rel=0.01)
    # the wheel zooms around the pointer: the point under it stays put
    await page.mouse.move(zoomed["x"] + 20, zoomed["y"] + 10)
    await page.mouse.wheel(0, 300)
    await page.wait_for_function("document.querySelector('.zoom-label').textContent !== '120%'")
    out = await node.bounding_box()
    assert out is not None and out["width"] < zoomed["width"]
    scale = out["width"] / zoomed["width"]
    assert (out["x"], out["y"]) == pytest.approx(
        (zoomed["x"] + 20 * (1 - scale), zoomed["y"] + 10 * (1 - scale)), abs=1
    )
    label = await page.locator(".zoom-label").text_content()

    await page.reload()
    await tab.wait_live()
    again = await node.bounding_box()
    assert again is not None and (again["x"], again["y"]) == pytest.approx(
        (out["x"], out["y"]), abs=1
    )
    await expect(page.locator(".zoom-label")).to_have_text(label or "")
    # fit all: one node, so it is framed at the largest zoom fit allows (100%), in the middle;
    # React Flow applies fitView on a later frame, hence the wait on the label
    assert label != "100%"
    await page.get_by_role("button", name="Fit all nodes in view").click()
    await expect(page.locator(".zoom-label")).to_have_text("100%")
    fitted = await node.bounding_box()
    pane = await page.locator(".react-flow").bounding_box()
    assert fitted is not None and pane is not None
    assert (fitted["x"] + fitted["width"] / 2, fitted["y"] + fitted["height"] / 2) == pytest.approx(
        (pane["x"] + pane["width"] / 2, pane["y"] + pane["height"] / 2), abs=4
    )


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
    await page.get_by_role("button", name="Connect into Prompt of this video node").focus()
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


async def build_graph(tab: CanvasPage, image: bytes | None = None) -> dict[str, str]:
    """Add a prompt (with text), an image (with `image` uploaded) and a video node, wired up."""
    ids = {"prompt": await tab.add_node("prompt")}
    await tab.node(ids["prompt"]).get_by_label("Prompt text").fill(PROMPT)
    if image is not None:
        ids["image"] = await tab.add_node("image")
    ids["video"] = await tab.add_node("video")
    await tab.connect(ids["prompt"], ids["video"])
    if image is not None:
        await tab.connect(ids["image"], ids["video"])
        await tab.upload_image(ids["image"], image)
        await expect(tab.node(ids["video"]).locator(".input-value").nth(1)).to_have_text(
            "Connected image"
        )
    return ids


async def job_rows(store: Store, project_id: str) -> list[dict[str, object]]:
    """The project's jobs as stored, oldest first."""
    rows = await store.db.fetch_all(
        "SELECT id::text AS id, status::text AS status, params, error FROM jobs "
        "WHERE project_id = :p ORDER BY created_at",
        {"p": project_id},
    )
    return [
        {
            **dict(r),
            "params": json.loads(r["params"]) if isinstance(r["params"], str) else r["params"],
        }
        for r in rows
    ]


async def wait_for_video(tab: CanvasPage, node_id: str) -> None:
    """Wait until the node's <video> has a decoded frame and a duration."""
    await (
        tab.node(node_id)
        .locator("video")
        .evaluate(
            """v => new Promise((resolve, reject) => {
            const ok = () => v.readyState >= 2 && v.duration > 0;
            if (ok()) return resolve();
            const check = () => ok() && resolve();
            v.addEventListener('loadeddata', check);
            v.addEventListener('canplay', check);
            v.addEventListener('error', () => reject(new Error('video error ' + (v.error && v.error.code))));
            setTimeout(() => reject(new Error('video did not load: readyState ' + v.readyState)), 20000);
        })"""
        )
    )


@pytest.mark.timeout(180)
async def test_generate_video_with_live_progress_and_preview(
    tab: CanvasPage, worker: WorkerHarness, store: Store
) -> None:
    """Prompt and uploaded image wired into a video node generate a clip, with live progress and a playable preview."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Fox at dawn")
    ids = await build_graph(tab, make_png())
    video = tab.node(ids["video"])
    await video.get_by_label("Duration").select_option("4")
    await tab.record_progress(ids["video"])

    await video.get_by_role("button", name="Generate").click()
    await expect(video.locator(".badge")).to_have_text(re.compile("Pending|Processing"))
    await expect(video.get_by_role("button", name="Cancel")).to_be_visible()
    await expect(video.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    progress = await tab.recorded_progress()
    assert any(0 < p < 100 for p in progress), f"the bar never showed progress: {progress}"
    assert progress == sorted(progress), f"progress went backwards: {progress}"

    await wait_for_video(tab, ids["video"])
    duration = await video.locator("video").evaluate("v => v.duration")
    assert duration == pytest.approx(4, abs=0.2)
    link = video.get_by_role("link", name=re.compile("Open in new tab"))
    href = await link.get_attribute("href")
    assert href and href == await video.locator("video").evaluate("v => v.currentSrc")
    assert await link.get_attribute("target") == "_blank"
    answer = await page.request.get(href)
    assert answer.status == 200 and answer.headers["content-type"] == "video/mp4"
    await expect(video.locator(".video-meta")).to_have_text("720p · 4 s · 16:9")
    jobs = await job_rows(store, project_id)
    assert [j["status"] for j in jobs] == ["completed"]
    params = jobs[0]["params"]
    assert isinstance(params, dict)
    assert params["prompt"] == PROMPT and params["duration"] == 4
    assert str(params["image_key"]).startswith(f"images/{project_id}/")
    # a frame from the middle of the clip for the screenshot
    await video.locator("video").evaluate(
        "v => new Promise(r => { v.addEventListener('seeked', r, {once: true}); v.currentTime = 2.5; })"
    )
    await page.mouse.move(900, 700)
    await page.wait_for_timeout(1000)  # the player's seek spinner fades out
    await tab.screenshot("canvas")

    # Regenerate, then Cancel while it runs: the finished clip stays on show throughout
    await video.get_by_label("Resolution").select_option("1080p")
    await video.get_by_label("Duration").select_option("8")
    await video.get_by_role("button", name="Regenerate").click()
    await expect(video.locator(".badge")).to_have_text(re.compile("Pending|Processing"))
    await expect(video.locator("video")).to_be_visible()
    await video.get_by_role("button", name="Cancel").click()
    await expect(video.locator(".badge")).to_have_text("Cancelled")
    await expect(video.locator("video")).to_be_visible()
    await expect(link).to_be_visible()
    await wait_for_video(tab, ids["video"])
    jobs = await job_rows(store, project_id)
    assert [j["status"] for j in jobs] == ["completed", "cancelled"]


@pytest.mark.timeout(360)
async def test_reload_mid_generation_resumes_the_same_job(
    tab: CanvasPage, worker: WorkerHarness, store: Store
) -> None:
    """A reload while a video renders shows the running job, follows it to the end, and starts no second job."""
    page = tab.page
    await tab.sign_up()
    project_id = await tab.create_project("Reload")
    ids = await build_graph(tab, make_png())
    video = tab.node(ids["video"])
    await video.get_by_label("Resolution").select_option("1080p")
    await tab.record_progress(ids["video"])
    await video.get_by_role("button", name="Generate").click()
    await page.wait_for_function(
        "(window.cfProgress || []).some(p => p > 0)", timeout=RENDER_WAIT_MS
    )

    await page.reload()
    await tab.wait_live()
    video = tab.node(ids["video"])
    await expect(video.locator(".badge")).to_have_text("Processing")
    await expect(video.get_by_role("button", name="Cancel")).to_be_visible()
    await tab.record_progress(ids["video"])
    await expect(video.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    progress = await tab.recorded_progress()
    assert any(0 < p < 100 for p in progress), f"no progress after the reload: {progress}"
    await wait_for_video(tab, ids["video"])

    jobs = await job_rows(store, project_id)
    assert [j["status"] for j in jobs] == ["completed"]
    assert worker.renderer.submitted == 1


@pytest.mark.timeout(120)
async def test_second_browser_mirrors_every_change(tab: CanvasPage, browser: Browser) -> None:
    """A second browser logged in as the same user sees moves, edits, new nodes, wiring and deletions live."""
    email = await tab.sign_up()
    project_id = await tab.create_project("Mirror")
    prompt = await tab.add_node("prompt")
    video = await tab.add_node("video")

    other = await CanvasPage.open(browser, tab.base_url)
    await other.log_in(email)
    await other.open_project(project_id)
    await expect(other.nodes()).to_have_count(2)

    await tab.move_node(video, 150, 90)
    moved = await tab.node_position(video)
    await other.page.wait_for_function(
        """([id, x, y]) => {
            const el = document.querySelector(`.react-flow__node[data-id="${id}"]`);
            const m = new DOMMatrix(getComputedStyle(el).transform);
            return Math.abs(m.e - x) < 1 && Math.abs(m.f - y) < 1;
        }""",
        arg=[video, moved[0], moved[1]],
    )
    await tab.node(prompt).get_by_label("Prompt text").fill(PROMPT)
    await expect(other.node(prompt).get_by_label("Prompt text")).to_have_value(PROMPT)
    await tab.connect(prompt, video)
    await expect(other.page.locator(".edge")).to_have_count(1)
    await expect(other.node(video).locator(".input-value").first).to_have_text(PROMPT)
    await tab.node(video).get_by_label("Aspect").select_option("9:16")
    await expect(other.node(video).get_by_label("Aspect")).to_have_value("9:16")
    image = await tab.add_node("image")
    await expect(other.node(image)).to_be_visible()
    await tab.page.get_by_label("Project name").fill("Mirror, renamed")
    await tab.page.get_by_label("Project name").press("Enter")
    await expect(other.page.get_by_label("Project name")).to_have_value("Mirror, renamed")

    # and back: the second browser deletes, the first sees it
    await other.node(image).get_by_role("button", name="Delete image node").click()
    await expect(tab.node(image)).to_have_count(0)
    await other.click_edge(0)
    await other.page.get_by_role("button", name="Delete selected connection").click()
    await expect(tab.page.locator(".edge")).to_have_count(0)
    await tab.screenshot("mirror")

    # deleting the project from the list sends the other browser back to its list
    await tab.page.get_by_role("link", name="All projects").click()
    await tab.page.get_by_role("button", name="Delete Mirror, renamed").click()
    await tab.page.get_by_role("button", name="Delete project").click()
    await expect(other.page.get_by_role("alert")).to_contain_text("This project was deleted.")
    await expect(other.page.get_by_role("heading", name="Projects")).to_be_visible()
    await expect(other.page.get_by_text("No projects yet.")).to_be_visible()
    other.assert_no_errors()


@pytest.mark.timeout(120)
async def test_lost_network_then_catch_up(tab: CanvasPage, server: ServerThread) -> None:
    """Offline, the indicator says so; back online the canvas shows what changed meanwhile and stays live."""
    page = tab.page
    email = await tab.sign_up()
    project_id = await tab.create_project("Flaky wifi")
    prompt = await tab.add_node("prompt")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as api:
        r = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['token']}"}

        await tab.context.set_offline(True)
        await expect(page.locator("#link-status")).to_have_attribute("data-state", "offline")
        # changes made elsewhere while this tab cannot hear them
        r = await api.patch(
            f"/api/nodes/{prompt}",
            json={"x": 600, "y": 420, "data": {"prompt": "made while offline"}},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        r = await api.post(
            f"/api/projects/{project_id}/nodes",
            json={"type": "video", "x": 980, "y": 80},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        video = r.json()["id"]
        await page.wait_for_timeout(500)
        await expect(tab.nodes()).to_have_count(1)

        await tab.context.set_offline(False)
        await expect(page.locator("#link-status")).to_have_attribute("data-state", "live")
        await expect(tab.nodes()).to_have_count(2)
        await expect(tab.node(prompt).get_by_label("Prompt text")).to_have_value(
            "made while offline"
        )
        assert await tab.node_position(prompt) == pytest.approx((600, 420))
        # and it keeps receiving
        r = await api.post(
            f"/api/projects/{project_id}/connections",
            json={"source_id": prompt, "target_id": video},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        await expect(page.locator(".edge")).to_have_count(1)


@pytest.mark.timeout(180)
async def test_failed_job_shows_its_error_and_regenerates(
    tab: CanvasPage, worker: WorkerHarness, store: Store, services: Services
) -> None:
    """A job whose input image vanished from storage shows its error, and Regenerate with a new image succeeds."""
    await tab.sign_up()
    project_id = await tab.create_project("Broken input")
    ids = await build_graph(tab, make_png(320, 180))
    image_key = await tab.page.evaluate(
        f"fetch('/api/nodes/{ids['image']}').then(r => r.json()).then(n => n.data.image_key)"
    )
    # the upload is still recorded, but its file is gone from storage: the worker cannot read it
    storage = make_storage(settings_for(services))
    assert isinstance(storage, LocalStorage)
    storage.path_for(image_key).unlink()
    video = tab.node(ids["video"])
    await video.get_by_role("button", name="Generate").click()
    await expect(video.locator(".badge")).to_have_text("Failed", timeout=RENDER_WAIT_MS)
    error = video.get_by_role("alert")
    await expect(error).to_contain_text("Generation failed: an input could not be read")
    await expect(video.get_by_role("button", name="Regenerate")).to_be_enabled()
    await tab.screenshot("failed")

    # a fresh image, and the same node generates
    await tab.upload_image(ids["image"], make_png())
    await video.get_by_label("Duration").select_option("4")
    await video.get_by_role("button", name="Regenerate").click()
    await expect(video.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    await expect(video.get_by_role("alert")).to_be_hidden()
    await wait_for_video(tab, ids["video"])
    jobs = await job_rows(store, project_id)
    assert [j["status"] for j in jobs] == ["failed", "completed"]
    assert "an input could not be read" in str(jobs[0]["error"])
