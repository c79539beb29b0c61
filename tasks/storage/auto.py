"""Pick the storage backend from the settings, like uvicorn's `auto.py`."""

from __future__ import annotations

import secrets
from pathlib import Path

from server.config import Settings
from tasks.storage.base import Storage
from tasks.storage.local import LocalStorage


def load_secret(settings: Settings) -> bytes:
    """The signing secret: CANVASFLOW_SECRET_KEY, else one kept under the data directory."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def make_storage(settings: Settings) -> Storage:
    """Local storage under the data directory, or GCS when GCS_BUCKET is set."""
    return LocalStorage(
        Path(settings.data_dir) / "media", load_secret(settings), base_url=settings.public_url
    )
