"""Rows as clients see them: media keys turned into freshly signed URLs.

Only keys are stored; every time a node, job or event leaves the server its
URLs are signed anew here, so a URL a client holds is never older than the
message that carried it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from db.jobs import Job
from db.nodes import Node
from tasks.storage.base import Storage

#: node.data keys holding a storage key, and the URL key each gets
_MEDIA_KEYS = {"video_key": "video_url", "image_key": "image_url"}


class JobStatusResponse(msgspec.Struct):
    """A job as the REST API and the websocket send it."""

    job_id: UUID
    node_id: UUID
    project_id: UUID
    type: str
    status: str
    progress: float
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class Presenter:
    """Signs the media keys of outgoing rows with one storage and one URL lifetime."""

    def __init__(self, storage: Storage, url_ttl_s: int) -> None:
        self.storage = storage
        self.url_ttl_s = url_ttl_s

    async def _sign_keys(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key_field, url_field in _MEDIA_KEYS.items():
            key = data.get(key_field)
            if isinstance(key, str) and key:
                out[url_field] = await self.storage.sign_url(key, self.url_ttl_s)
        return out

    async def node(self, node: Node | dict[str, Any]) -> dict[str, Any]:
        """A node with `video_url` / `image_url` beside the keys in its data."""
        plain: dict[str, Any] = msgspec.to_builtins(node) if isinstance(node, Node) else dict(node)
        plain["data"] = await self._sign_keys(plain.get("data") or {})
        return plain

    async def job(self, job: Job | dict[str, Any]) -> JobStatusResponse:
        """A job in the contract's JobStatusResponse shape, its video URL signed now."""
        j = job if isinstance(job, Job) else msgspec.convert(job, Job, strict=False)
        result = None if j.result is None else await self._sign_keys(j.result)
        return JobStatusResponse(
            job_id=j.id,
            node_id=j.node_id,
            project_id=j.project_id,
            type=j.type,
            status=j.status.value,
            progress=j.progress,
            result=result,
            error=j.error,
            created_at=j.created_at,
            updated_at=j.updated_at,
        )

    async def event_data(self, data: Any) -> Any:
        """Event data with its `node`, `nodes` and `job` members presented."""
        if not isinstance(data, dict):
            data = msgspec.to_builtins(data)
            if not isinstance(data, dict):
                return data
        out = dict(data)
        if isinstance(out.get("node"), dict):
            out["node"] = await self.node(out["node"])
        if isinstance(out.get("job"), dict):
            out["job"] = msgspec.to_builtins(await self.job(out["job"]))
        return out
