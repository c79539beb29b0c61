"""The storage interface every backend implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """Object storage failed to store or return an object."""


class Storage(Protocol):
    """Where images and videos live. Keys look like `videos/{project_id}/{job_id}.mp4`."""

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key`."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` under `key` without reading it all into memory."""

    async def get_bytes(self, key: str) -> bytes:
        """The object at `key`; raises StorageError when it is missing."""

    async def delete(self, key: str) -> None:
        """Remove the object at `key`; a key with no object is not an error."""

    async def sign_url(self, key: str, ttl_s: int) -> str:
        """A URL that fetches `key` until `ttl_s` seconds from now."""
