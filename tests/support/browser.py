"""Playwright helpers for the canvas tests: Debian's Chromium and the gestures a person makes.

The browser is the system's `/usr/bin/chromium` (Playwright never downloads one).
`CanvasPage` wraps one tab of the canvas app with the steps the tests share:
sign up, create a project, add nodes, drag, connect. Uncaught page errors are
collected so a test can fail on any JavaScript exception.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: where screenshots go; CANVASFLOW_SCREENSHOT_DIR=docs refreshes the committed ones
SCREENSHOT_DIR = Path(os.environ.get("CANVASFLOW_SCREENSHOT_DIR") or ROOT / ".data" / "screenshots")
PASSWORD = "correct horse battery"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
#: default wait for UI state, in ms
WAIT_MS = 15_000


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class CanvasPage:
    """One tab of the canvas app."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.set_default_timeout(WAIT_MS)

    @classmethod
    async def open(
        cls, browser: Browser, base_url: str, viewport: ViewportSize | None = None
    ) -> CanvasPage:
        """A fresh browser context (its own cookies) with one tab."""
        context = await browser.new_context(viewport=viewport or DESKTOP)
        return cls(await context.new_page(), base_url)

    @property
    def context(self) -> BrowserContext:
        """The browser context holding this tab's cookies."""
        return self.page.context

    async def new_tab(self) -> CanvasPage:
        """Another tab of the same context: same user, same cookie."""
        return CanvasPage(await self.context.new_page(), self.base_url)

    async def goto(self, fragment: str = "#/") -> None:
        """Load the app at a hash route."""
        await self.page.goto(f"{self.base_url}/{fragment}")

    async def sign_up(self, email: str | None = None) -> str:
        """Create an account through the form; returns the email."""
        email = email or f"canvas{secrets.token_hex(4)}@example.com"
        await self._account_form("#/signup", "Create account", email)
        return email

    async def log_in(self, email: str) -> None:
        """Log in through the form as `email` (the suite's password)."""
        await self._account_form("#/login", "Log in", email)

    async def _account_form(self, route: str, button: str, email: str) -> None:
        """Fill the sign-up or log-in form and wait for the project list."""
        await self.goto(route)
        await self.page.get_by_label("Email").fill(email)
        await self.page.get_by_label("Password").fill(PASSWORD)
        await self.page.get_by_role("button", name=button).click()
        await self.page.get_by_role("heading", name="Projects").wait_for()

    async def create_project(self, name: str) -> str:
        """Create a project from the list and wait for its canvas; returns its id."""
        await self.page.get_by_label("New project name").fill(name)
        await self.page.get_by_role("button", name="Create project").click()
        await self.page.wait_for_url("**/#/p/*")
        await self.wait_live()
        return self.page.url.rsplit("/", 1)[1]

    async def open_project(self, project_id: str) -> None:
        """Open a project's canvas by its address and wait for its state."""
        await self.goto(f"#/p/{project_id}")
        await self.wait_live()

    async def wait_live(self) -> None:
        """Wait until the canvas shows the server's state and the live link is up."""
        await self.page.locator(".loading").wait_for(state="hidden")
        await self.page.locator('#link-status[data-state="live"]').wait_for()

    def node(self, node_id: str) -> Locator:
        """A node card by id."""
        return self.page.locator(f'.node[data-node-id="{node_id}"]')

    def nodes(self, node_type: str | None = None) -> Locator:
        """Every node card, or those of one type."""
        return self.page.locator(f".node-{node_type}" if node_type else ".node")

    async def add_node(self, node_type: str) -> str:
        """Add a node with the toolbar button; returns the new node's id."""
        before = set(await self.node_ids())
        label = {"image_gen": "image generator"}.get(node_type, node_type)
        await self.page.get_by_role("button", name=f"Add {label} node").click()
        handle = await self.page.wait_for_function(
            """([type, before]) => {
                const ids = [...document.querySelectorAll('.node-' + type)].map(n => n.dataset.nodeId);
                return ids.find(id => !before.includes(id)) || null;
            }""",
            arg=[node_type, sorted(before)],
        )
        node_id = await handle.json_value()
        assert isinstance(node_id, str)
        return node_id

    async def node_ids(self) -> list[str]:
        """Ids of the node cards on the canvas."""
        ids = await self.page.locator(".node").evaluate_all("els => els.map(e => e.dataset.nodeId)")
        return [str(i) for i in ids]

    async def drag(self, source: Locator, target: Locator | tuple[float, float]) -> None:
        """Press on `source`, move in steps like a hand would, release over `target`."""
        box = await source.bounding_box()
        assert box is not None, "drag source is not visible"
        x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        if isinstance(target, tuple):
            x1, y1 = target
        else:
            tbox = await target.bounding_box()
            assert tbox is not None, "drag target is not visible"
            x1, y1 = tbox["x"] + tbox["width"] / 2, tbox["y"] + tbox["height"] / 2
        mouse = self.page.mouse
        await mouse.move(x0, y0)
        await mouse.down()
        for step in range(1, 13):
            await mouse.move(x0 + (x1 - x0) * step / 12, y0 + (y1 - y0) * step / 12)
        await mouse.up()

    def port(self, node_id: str, port: str) -> Locator:
        """An input port's handle of a node (`prompt`, `first_frame`, ...)."""
        return self.node(node_id).locator(f'.handle-in[data-port="{port}"]')

    async def connect(self, source_id: str, target_id: str, port: str | None = None) -> None:
        """Drag from the source's output handle to the target's input port that takes it."""
        count = await self.page.locator(".edge").count()
        if port is None:
            kind = await self.node(source_id).get_attribute("data-type")
            port = {"prompt": "prompt", "image": "first_frame", "video": "extend"}[kind or ""]
        await self.drag(self.node(source_id).locator(".handle-out"), self.port(target_id, port))
        await self.page.wait_for_function(
            f"document.querySelectorAll('.edge').length === {count + 1}"
        )

    async def click_edge(self, index: int) -> None:
        """Click the middle of the index-th connection's curve with the mouse."""
        xy = (
            await self.page.locator(".edge .react-flow__edge-interaction")
            .nth(index)
            .evaluate(
                """path => {
                const p = path.getPointAtLength(path.getTotalLength() / 2);
                const m = path.getScreenCTM();
                return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
            }"""
            )
        )
        await self.page.mouse.click(float(xy[0]), float(xy[1]))

    async def move_node(self, node_id: str, dx: float, dy: float) -> None:
        """Drag a node by its title by (dx, dy) screen pixels."""
        title = self.node(node_id).locator(".node-title")
        box = await title.bounding_box()
        assert box is not None
        await self.drag(
            title, (box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2 + dy)
        )

    def flow_node(self, node_id: str) -> Locator:
        """React Flow's wrapper of a node card: it carries the node's place."""
        return self.page.locator(f'.react-flow__node[data-id="{node_id}"]')

    async def node_position(self, node_id: str) -> tuple[float, float]:
        """Where the card is drawn, in flow coordinates (its wrapper's CSS translate)."""
        xy = await self.flow_node(node_id).evaluate(
            "el => { const m = new DOMMatrix(getComputedStyle(el).transform); return [m.e, m.f]; }"
        )
        return float(xy[0]), float(xy[1])

    async def upload_image(self, node_id: str, data: bytes, name: str = "dawn.png") -> None:
        """Choose `data` as the image node's file and wait until the node shows it."""
        node = self.node(node_id)
        img = node.locator("img.image-preview")
        before = await img.get_attribute("src") if await img.count() else None
        await node.locator('input[type="file"]').set_input_files(
            {"name": name, "mimeType": "image/png", "buffer": data}
        )
        await node.page.wait_for_function(
            """([id, before]) => {
                const img = document.querySelector(`.node[data-node-id="${id}"] img.image-preview`);
                return img && img.getAttribute('src') && img.getAttribute('src') !== before
                    && img.complete && img.naturalWidth > 0;
            }""",
            arg=[node_id, before],
        )

    async def record_progress(self, node_id: str) -> None:
        """Start recording every value the video node's progress bar shows (window.cfProgress)."""
        await (
            self.node(node_id)
            .locator('[role="progressbar"]')
            .evaluate(
                """bar => {
                window.cfProgress = [];
                new MutationObserver(() => {
                    if (!bar.hidden) window.cfProgress.push(Number(bar.getAttribute('aria-valuenow')));
                }).observe(bar, {attributes: true});
            }"""
            )
        )

    async def recorded_progress(self) -> list[float]:
        """The progress values recorded since record_progress."""
        values = await self.page.evaluate("window.cfProgress || []")
        return [float(v) for v in values]

    async def screenshot(self, name: str) -> Path:
        """Save a PNG of the tab as `screenshot-{name}.png` in SCREENSHOT_DIR."""
        await asyncio.to_thread(SCREENSHOT_DIR.mkdir, parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"screenshot-{name}.png"
        await self.page.screenshot(path=str(path))
        return path

    def assert_no_errors(self) -> None:
        """Fail if the page threw an uncaught exception."""
        assert not self.errors, f"uncaught page errors: {self.errors}"


async def wait_until(page: Page, script: str, arg: object = None, timeout_s: float = 15) -> None:
    """Poll an async page function (a fetch of the API, say) until it answers true.

    `page.wait_for_function` does not await a promise: an async predicate passes at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await page.evaluate(script, arg):
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {script.strip()[:120]}")
        await asyncio.sleep(0.05)


def make_png(width: int = 640, height: int = 360) -> bytes:
    """A PNG of a dawn sky over hills, drawn with Pillow."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)], fill=(int(40 + 200 * t), int(40 + 90 * t), int(110 - 40 * t))
        )
    draw.ellipse((width * 0.6, height * 0.45, width * 0.75, height * 0.7), fill=(255, 214, 120))
    draw.polygon(
        [
            (0, height),
            (0, height * 0.7),
            (width * 0.3, height * 0.55),
            (width * 0.6, height * 0.75),
            (width, height * 0.6),
            (width, height),
        ],
        fill=(22, 38, 40),
    )
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


#: page script: visible text whose colour contrast with its background is below WCAG AA
CONTRAST_FAILURES_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg.a > 0) layers.push(bg);
      if (bg && bg.a === 1) break;
    }
    let color = { r: 13, g: 15, b: 20, a: 1 };
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!t.textContent.trim() || !el || el.closest('[hidden], .sr-only, option, dialog:not([open])')) continue;
    const style = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || rect.width === 0 || rect.height === 0) continue;
    if (el.closest('button:disabled')) continue;  // WCAG exempts inactive controls
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}: ${t.textContent.trim().slice(0, 40)}`);
  }
  return failures;
}
"""

#: page script: controls without an accessible name, and form fields without a label
UNLABELLED_JS = """
() => {
  const out = [];
  for (const el of document.querySelectorAll('button, a[href], [role=button]')) {
    if (el.closest('[hidden]')) continue;
    const name = el.getAttribute('aria-label') || el.textContent.trim() || el.getAttribute('title');
    if (!name) out.push(el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('input, textarea, select')) {
    if (el.type === 'hidden') continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) out.push(el.outerHTML.slice(0, 80));
  }
  return out;
}
"""
