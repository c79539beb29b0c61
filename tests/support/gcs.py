"""The GCS fake as pytest fixtures: the server, the environment that points the client at it,
a GcsStorage, and a canvasflow web process storing its media there. Test modules that use
them import them by name (pytest then sees them as the module's own fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from common.config import Settings
from tasks.storage.auto import make_storage
from tasks.storage.gcs import GcsStorage
from tests.fakes.gcs import FakeGcs
from tests.support.servers import AppThread, ServerThread
from tests.support.services import Services, free_port, settings_for

BUCKET = "canvasflow-media"


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeGcs, str, Path]]:
    """The GCS fake on loopback, and a service-account key file whose token_uri is the fake."""
    fake = FakeGcs()
    with AppThread(fake.app) as server:
        key_file = fake.service_account_file(tmp_path_factory.mktemp("sa"), server.url)
        yield fake, server.url, key_file


@pytest.fixture
def gcs_env(gcs_server: tuple[FakeGcs, str, Path], monkeypatch: pytest.MonkeyPatch) -> FakeGcs:
    """Point google-cloud-storage and google-auth at the fake, as an operator would with env vars."""
    fake, url, key_file = gcs_server
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    fake.requests.clear()
    fake.refusals.clear()
    return fake


@pytest.fixture
def gcs(gcs_env: FakeGcs) -> GcsStorage:
    """A GcsStorage as make_storage builds it when GCS_BUCKET is set."""
    storage = make_storage(Settings(gcs_bucket=BUCKET))
    assert isinstance(storage, GcsStorage)
    return storage


@pytest.fixture
async def gcs_web(gcs_env: FakeGcs, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A canvasflow web process storing media in the GCS fake; a client of it."""
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        gcs_bucket=BUCKET,
    )
    server = ServerThread(settings, port)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            yield client
    finally:
        server.stop()
