"""Rows as clients see them: media keys turned into freshly signed URLs.

Only keys are stored; every time a node, job, take or event leaves the server its
URLs are signed anew here, so a URL a client holds is never older than the
message that carried it. Everything else about the shapes is
common/protocol: this module only fills in `*_url` beside each `*_key`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from common.protocol.entities import JobStatusResponse, Node, Take
from common.protocol.events import AnyEvent, Payload
from common.protocol.frames import Snapshot
from tasks.storage.base import Storage

#: node.data / job.result keys holding a storage key, and the URL key each gets
_MEDIA_KEYS = {"video_key": "video_url", "image_key": "image_url"}

P = TypeVar("P", bound=Payload)


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

    async def node(self, node: Node) -> Node:
        """The node with `video_url` / `image_url` beside the keys in its data."""
        return msgspec.structs.replace(node, data=await self._sign_keys(node.data))

    async def job(self, job: JobStatusResponse) -> JobStatusResponse:
        """The job with its result's `video_url` signed now."""
        if job.result is None:
            return job
        return msgspec.structs.replace(job, result=await self._sign_keys(job.result))

    async def take(self, take: Take) -> Take:
        """The take with its `media_url` signed now."""
        url = await self.storage.sign_url(take.media_key, self.url_ttl_s)
        return msgspec.structs.replace(take, media_url=url)

    async def payload(self, data: P) -> P:
        """An event's data with every node, job and take in it presented."""
        changes: dict[str, Any] = {}
        for name in data.__struct_fields__:
            value = getattr(data, name)
            if isinstance(value, Node):
                changes[name] = await self.node(value)
            elif isinstance(value, JobStatusResponse):
                changes[name] = await self.job(value)
            elif isinstance(value, list) and value and isinstance(value[0], Take):
                changes[name] = [await self.take(t) for t in value]
        return msgspec.structs.replace(data, **changes) if changes else data

    async def event(self, event: AnyEvent) -> AnyEvent:
        """The event with its data presented (data of an unknown kind passes as it came)."""
        if isinstance(event.data, msgspec.Raw):
            return event
        return msgspec.structs.replace(event, data=await self.payload(event.data))

    async def snapshot(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with every node, job and take presented."""
        return msgspec.structs.replace(
            snapshot,
            nodes=[await self.node(n) for n in snapshot.nodes],
            jobs=[await self.job(j) for j in snapshot.jobs],
            takes=[await self.take(t) for t in snapshot.takes],
        )
