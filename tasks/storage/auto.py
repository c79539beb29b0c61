"""Pick the storage backend from the settings, like uvicorn's `auto.py`."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path

from common.config import Settings
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


#: where GCS serves signed URLs unless STORAGE_EMULATOR_HOST points elsewhere
GCS_ENDPOINT = "https://storage.googleapis.com"


def make_storage(settings: Settings) -> Storage:
    """Local storage under the data directory, or GCS when GCS_BUCKET is set.

    The GCS module is imported lazily so the offline default never loads
    google-cloud-storage.
    """
    if settings.gcs_bucket:
        gcs = importlib.import_module("tasks.storage.gcs")
        storage: Storage = gcs.GcsStorage.from_settings(settings)
        return storage
    return LocalStorage(
        Path(settings.data_dir) / "media", load_secret(settings), base_url=settings.public_url
    )


def media_url_prefixes(settings: Settings) -> tuple[str, ...]:
    """Prefixes of the media URLs this deployment issues besides `{public_url}/media/`.

    With GCS, signed URLs are `{endpoint}/{bucket}/{key}?X-Goog-…`; an image
    reference of that form names `key` (the same rule the SDK's client uses
    to pick its endpoint: STORAGE_EMULATOR_HOST first).
    """
    if not settings.gcs_bucket:
        return ()
    endpoint = settings.gcs_emulator_host or GCS_ENDPOINT
    return (f"{endpoint.rstrip('/')}/{settings.gcs_bucket}/",)
