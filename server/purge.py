"""Delete the stored media of a deleted project or node, once the deletion has committed.

The handler reads the keys inside its change (db/media.py) and calls one of
these after `publish_change` returns, before it answers: by the time the
client sees 204, every URL it was given for those objects answers 404
(local storage: the file is gone; GCS: the object is). A storage failure is
logged and does not undo the deletion; the object is then an orphan.
"""

from __future__ import annotations

import asyncio
import logging

from db import media
from db.changes import Store
from tasks.storage.base import Storage

log = logging.getLogger(__name__)

#: deletes in flight at once (GCS: one HTTP request and one thread each)
_PARALLEL = 8


async def delete_media(storage: Storage, keys: list[str]) -> None:
    """Delete these objects, a few at a time; failures are logged, not raised."""
    gate = asyncio.Semaphore(_PARALLEL)

    async def delete(key: str) -> None:
        async with gate:
            try:
                await storage.delete(key)
            except Exception as exc:  # the rows are gone: an orphan object is all that is left
                log.warning("could not delete media %s: %s: %s", key, type(exc).__name__, exc)

    await asyncio.gather(*(delete(key) for key in keys))


async def purge_node_media(store: Store, storage: Storage, owned: media.NodeMedia | None) -> None:
    """After a node's deletion: its jobs' videos, and its image unless another node or job
    of the project still uses that upload (then the upload stays)."""
    if owned is None:
        return
    keys = list(owned.video_keys)
    if owned.image_key and await media.release_upload(store.db, owned.project_id, owned.image_key):
        keys.append(owned.image_key)
    await delete_media(storage, keys)
