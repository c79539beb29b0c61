"""The uploads table: images a project uploaded, the only images a job may start from."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from db.changes import ProjectGone
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


class QuotaExceeded(Exception):
    """The upload would take its owner's uploads past their storage quota."""

    def __init__(self, used_bytes: int, quota_bytes: int) -> None:
        super().__init__(f"{used_bytes} of {quota_bytes} bytes used")
        self.used_bytes = used_bytes
        self.quota_bytes = quota_bytes


_USED = (
    "SELECT COALESCE(SUM(u.size_bytes), 0) FROM uploads u "
    "JOIN projects p ON p.id = u.project_id WHERE p.owner_id = :o"
)


async def storage_used(db: Database, owner_id: UUID) -> int:
    """Bytes of uploads in the projects `owner_id` owns."""
    return int(await db.fetch_val(_USED, {"o": owner_id}))


async def insert_upload(
    db: Database,
    upload_id: UUID,
    project_id: UUID,
    key: str,
    mime_type: str,
    width: int,
    height: int,
    size_bytes: int,
    *,
    quota_bytes: int,
) -> Upload:
    """Record an image stored at `key`, within its owner's quota.

    The owner's row is locked (FOR NO KEY UPDATE: sessions and projects may
    still reference it) while their usage is summed and the row inserted, so
    parallel uploads of one user cannot overshoot the quota together.
    Raises QuotaExceeded, or ProjectGone when the project was deleted.
    """
    async with db.transaction():
        owner = await db.fetch_val(
            "SELECT u.id FROM users u JOIN projects p ON p.owner_id = u.id "
            "WHERE p.id = :p FOR NO KEY UPDATE OF u",
            {"p": project_id},
        )
        if owner is None:
            raise ProjectGone(str(project_id))
        used = int(await db.fetch_val(_USED, {"o": owner}))
        if used + size_bytes > quota_bytes:
            raise QuotaExceeded(used, quota_bytes)
        try:
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
        except asyncpg.ForeignKeyViolationError:
            # the project's deletion committed while this waited for its row
            raise ProjectGone(str(project_id)) from None
    return to_struct(Upload, row)


async def get_project_upload(db: Database, project_id: UUID, key: str) -> Upload | None:
    """The upload of `project_id` stored at `key`, or None (another project's is None too)."""
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM uploads WHERE project_id = :p AND key = :k",
        {"p": project_id, "k": key},
    )
    return None if row is None else to_struct(Upload, row)
