"""Takes, variants, typed ports and the image-generation node (issue 16) in real Chromium, through the local renderer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import CanvasPage, wait_until
from tests.support.servers import ServerThread
from tests.support.workers import WorkerHarness

#: a job may wait for the worker's pickup and a CPU render: allow it this long, in ms
RENDER_WAIT_MS = 90_000


@pytest.fixture
async def tab(browser: Browser, server: ServerThread) -> AsyncIterator[CanvasPage]:
    """A tall tab of the canvas app (a node with its takes fits), in a fresh context; fails the test on any page error."""
    page = await CanvasPage.open(browser, server.base_url, viewport={"width": 1280, "height": 1500})
    yield page
    page.assert_no_errors()


async def takes_of(tab: CanvasPage, node_id: str) -> list[dict[str, Any]]:
    """The node's takes as the server lists them, newest first."""
    answer = await tab.page.evaluate(
        "async (id) => (await (await fetch(`/api/nodes/${id}/takes`)).json()).takes", node_id
    )
    assert isinstance(answer, list)
    return answer


async def active_take(tab: CanvasPage, node_id: str) -> str | None:
    """The node's active take id, as the server has it."""
    answer = await tab.page.evaluate(
        "async (id) => (await (await fetch(`/api/nodes/${id}`)).json()).active_take_id", node_id
    )
    return answer if isinstance(answer, str) else None


@pytest.mark.timeout(240)
async def test_four_variants_make_four_takes_pick_compare_delete_and_survive_reload(
    tab: CanvasPage, worker: WorkerHarness
) -> None:
    """Four variants make four takes; picking one makes it the node's, comparing shows two, a deleted take's media is gone and it never shows again, and all of it survives a reload."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Variants")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("Paper boats on a rainy street")
    video = await tab.add_node("video")
    await tab.connect(prompt, video)
    node = tab.node(video)
    await node.get_by_label("Duration").select_option("4")
    await node.get_by_label("Variants").select_option("4")
    await node.get_by_label("Seed").fill("42")
    await node.get_by_label("Seed").press("Enter")
    await node.get_by_text("More options").click()
    await node.get_by_label("Audio").check()
    await expect(node.get_by_label("People")).to_be_visible()
    await node.get_by_role("button", name="Generate").click()
    await expect(node.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)

    strip = node.get_by_role("region", name="Takes")
    await expect(strip.locator(".take")).to_have_count(4)
    await expect(strip.locator(".take-count")).to_have_text("4 takes")
    takes = await takes_of(tab, video)
    assert len(takes) == 4 and sorted(t["seed"] for t in takes) == [42, 43, 44, 45]
    params = takes[0]["params"]
    assert params["number_of_videos"] == 4 and params["generate_audio"] is True
    assert params["inputs"]["prompt"]["node_id"] == prompt, "the prompt came by its port"
    by_seed = {t["seed"]: t for t in takes}
    assert await active_take(tab, video) == by_seed[42]["id"]
    await expect(strip.get_by_role("button", name="Showing take 1 (seed 42)")).to_be_visible()

    async with page.expect_download() as download:
        await strip.get_by_role("link", name="Download take 1").click()
    assert (await download.value).suggested_filename == "canvasflow-take-1.mp4"

    # pick take 3: the node shows it, and the server keeps it
    await strip.get_by_role("button", name="Use take 3 (seed 44)").click()
    await expect(strip.get_by_role("button", name="Showing take 3 (seed 44)")).to_be_visible()
    third = by_seed[44]
    await wait_until(
        page,
        "async ([id, t]) => (await (await fetch(`/api/nodes/${id}`)).json()).active_take_id === t",
        [video, third["id"]],
    )
    key = str(third["media_key"])
    await expect(node.locator("video.video-preview")).to_have_attribute(
        "src", re.compile(re.escape(key))
    )

    # compare take 2 with it, side by side
    await strip.get_by_role("button", name="Compare take 2 with the active take").click()
    compare = node.get_by_role("group", name="Compare takes")
    await expect(compare.locator("video")).to_have_count(2)
    await expect(compare).to_contain_text("Take 2 · seed 43")
    await tab.screenshot("takes")
    await compare.get_by_role("button", name="Close comparison").click()
    await expect(compare).to_have_count(0)

    # delete take 4 (not shown) and then the shown take 3: media gone, never shown again
    fourth = by_seed[45]
    await strip.get_by_role("button", name="Delete take 4").click()
    await expect(strip.locator(".take")).to_have_count(3)
    await wait_until(
        page,
        'async (url) => (await fetch(url, { cache: "no-store" })).status === 404',
        fourth["media_url"],
    )
    await strip.get_by_role("button", name="Delete take 3").click()
    await expect(strip.locator(".take")).to_have_count(2)
    await wait_until(
        page,
        'async (url) => (await fetch(url, { cache: "no-store" })).status === 404',
        third["media_url"],
    )
    assert await active_take(tab, video) == by_seed[42]["id"], "the newest remaining take is active"
    await expect(node.locator("video.video-preview")).not_to_have_attribute(
        "src", re.compile(re.escape(key))
    )
    await expect(strip.get_by_role("button", name="Showing take 1 (seed 42)")).to_be_visible()

    await page.reload()
    await tab.wait_live()
    await expect(strip.locator(".take")).to_have_count(2)
    await expect(strip.get_by_role("button", name="Showing take 1 (seed 42)")).to_be_visible()
    await expect(strip.get_by_role("button", name="Use take 2 (seed 43)")).to_be_visible()
    for gone in (third, fourth):
        await expect(page.locator(f'[data-take-id="{gone["id"]}"]')).to_have_count(0)
    assert {t["id"] for t in await takes_of(tab, video)} == {by_seed[42]["id"], by_seed[43]["id"]}


@pytest.mark.timeout(240)
async def test_an_image_generator_feeds_a_video_first_frame_through_labelled_ports(
    tab: CanvasPage, worker: WorkerHarness
) -> None:
    """Prompt → image generator → the video's first frame: the ports are labelled handles that light up only where an image fits, a last frame alone is refused with the server's reason, and the chain renders."""
    page = tab.page
    await tab.sign_up()
    await tab.create_project("Chain")
    prompt = await tab.add_node("prompt")
    await tab.node(prompt).get_by_label("Prompt text").fill("A lighthouse on a cliff at dusk")
    gen = await tab.add_node("image_gen")
    await expect(tab.node(gen).locator(".handle-in")).to_have_count(1)
    await tab.connect(prompt, gen, "prompt")
    gen_node = tab.node(gen)
    await gen_node.get_by_role("button", name="Generate").click()
    await expect(gen_node.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    await expect(gen_node.get_by_role("img", name="Generated image")).to_be_visible()
    await expect(gen_node.get_by_role("region", name="Takes").locator(".take")).to_have_count(1)

    video = await tab.add_node("video")
    vnode = tab.node(video)
    for port, label in (
        ("prompt", "Prompt"),
        ("first_frame", "First frame"),
        ("last_frame", "Last frame"),
        ("references", "References"),
        ("extend", "Extend"),
    ):
        await expect(tab.port(video, port)).to_have_attribute(
            "aria-label", f"Connect into {label} of this video node"
        )
        await expect(vnode.locator(f'.port-row[data-port="{port}"] dt')).to_have_text(label)

    # while an image is dragged, only the image ports light up
    box = await gen_node.locator(".handle-out").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 60, box["y"] + 30, steps=5)
    lit = re.compile(r"(^|\s)port-compatible(\s|$)")
    for port in ("first_frame", "last_frame", "references"):
        await expect(tab.port(video, port)).to_have_class(lit)
    for port in ("prompt", "extend"):
        await expect(tab.port(video, port)).to_have_class(re.compile(r"port-incompatible"))
    await page.mouse.up()

    # a last frame without a first frame: the server refuses, and the node says why
    await tab.connect(gen, video, "last_frame")
    await tab.connect(prompt, video, "prompt")
    await vnode.get_by_role("button", name="Generate").click()
    refusal = vnode.locator(".refusal")
    await expect(refusal).to_contain_text("Not generated:")
    await expect(refusal).to_contain_text("first frame")

    # move the image to the first frame: the chain renders
    links = await page.evaluate(
        "async () => (await (await fetch(`/api/projects/${location.hash.split('/')[2]}/connections`)).json())"
    )
    last = next(c["id"] for c in links if c["target_port"] == "last_frame")
    xy = await page.locator(
        f'.edge[data-connection-id="{last}"] .react-flow__edge-interaction'
    ).evaluate(
        """path => {
            const p = path.getPointAtLength(path.getTotalLength() / 2);
            const m = path.getScreenCTM();
            return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
        }"""
    )
    await page.mouse.click(float(xy[0]), float(xy[1]))
    await page.keyboard.press("Delete")
    await expect(page.locator(".edge")).to_have_count(2)
    await tab.connect(gen, video, "first_frame")
    await vnode.get_by_label("Duration").select_option("4")
    await vnode.get_by_role("button", name="Generate").click()
    await expect(vnode.locator(".badge")).to_have_text("Completed", timeout=RENDER_WAIT_MS)
    await expect(refusal).to_have_count(0)
    await tab.screenshot("image-chain")
    takes = await takes_of(tab, video)
    assert len(takes) == 1
    params = takes[0]["params"]
    assert isinstance(params, dict)
    assert params["inputs"]["first_frame"]["node_id"] == gen
    gen_takes = await takes_of(tab, gen)
    assert params["inputs"]["first_frame"]["take_id"] == gen_takes[0]["id"]
    await expect(vnode.locator("video.video-preview")).to_have_count(1)
