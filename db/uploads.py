"""The uploads table: images a project uploaded, the only images a job may start from."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from db.pool import Database
from db.rows import to_struct

_COLUMNS = "id, project_id, key, mime_type, width, height, size_bytes, created_at"


class Upload(msgspec.Struct, frozen=True):
    """One stored image."""

    id: UUID
    project_id: UUID
    key: str
    mime_type: str
    width: int
    height: int
    size_bytes: int
    created_at: datetime


async def insert_upload(
    db: Database,
    upload_id: UUID,
    project_id: UUID,
    key: str,
    mime_type: str,
    width: int,
    height: int,
    size_bytes: int,
) -> Upload:
    """Record an image stored at `key`."""
    row = await db.fetch_one(
        "INSERT INTO uploads (id, project_id, key, mime_type, width, height, size_bytes) "
        f"VALUES (:id, :p, :k, :m, :w, :h, :s) RETURNING {_COLUMNS}",
        {
            "id": upload_id,
            "p": project_id,
            "k": key,
            "m": mime_type,
            "w": width,
            "h": height,
            "s": size_bytes,
        },
    )
    return to_struct(Upload, row)


async def get_project_upload(db: Database, project_id: UUID, key: str) -> Upload | None:
    """The upload of `project_id` stored at `key`, or None (another project's is None too)."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM uploads WHERE project_id = :p AND key = :k",
        {"p": project_id, "k": key},
    )
    return None if row is None else to_struct(Upload, row)
