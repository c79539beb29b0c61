"""Fixtures of the canvas browser tests: a headless Chromium, a tab of the app, and a real
worker with the local renderer. Registered by tests/conftest.py; a module that needs another
kind (a taller tab, a worker with other settings) defines its own under the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from tests.support.browser import CanvasPage, launch_chromium
from tests.support.servers import ServerThread
from tests.support.services import Services, settings_for
from tests.support.workers import WorkerHarness, running_worker


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Debian Chromium for one test."""
    async with launch_chromium() as b:
        yield b


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[WorkerHarness]:
    """A real arq worker with the local renderer, running while the test acts."""
    async with running_worker(settings_for(services)) as harness:
        yield harness


@pytest.fixture
async def tab(browser: Browser, server: ServerThread) -> AsyncIterator[CanvasPage]:
    """A tab of the canvas app in a fresh context; fails the test on any page error."""
    page = await CanvasPage.open(browser, server.base_url)
    yield page
    page.assert_no_errors()
