"""Which stored objects a project or a node owns, so deleting it can delete them too.

Keys are read inside the deleting change's transaction (after its seq bump
locked the project), so nothing that change removes is missed; the objects
themselves are deleted after the commit (server/purge.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from db.pool import Database


def video_key(project_id: UUID, job_id: UUID) -> str:
    """Where a video job stores its output (tasks/video.py writes it there)."""
    return f"videos/{project_id}/{job_id}.mp4"


async def project_media(db: Database, project_id: UUID) -> list[str]:
    """Every key a project owns: its uploads and its jobs' videos; call inside the delete.

    The project's row is locked FOR UPDATE first: an upload racing the delete
    (whose insert takes a key-share lock on that row) waits for the commit and
    then fails, so no upload can slip in between this list and the cascade.
    """
    await db.execute("SELECT 1 FROM projects WHERE id = :p FOR UPDATE", {"p": project_id})
    uploads = await db.fetch_all("SELECT key FROM uploads WHERE project_id = :p", {"p": project_id})
    jobs = await db.fetch_all("SELECT id FROM jobs WHERE project_id = :p", {"p": project_id})
    takes = await db.fetch_all(
        "SELECT media_key FROM takes WHERE project_id = :p", {"p": project_id}
    )
    keys = [str(r["key"]) for r in uploads] + [video_key(project_id, r["id"]) for r in jobs]
    # every output a job kept (its variants, images made by image_gen nodes)
    return sorted({*keys, *(str(r["media_key"]) for r in takes)})


@dataclass(frozen=True)
class NodeMedia:
    """What a node's deletion may free: its jobs' videos, and its image if nothing else uses it."""

    project_id: UUID
    video_keys: list[str]
    image_key: str | None


async def node_media(db: Database, node_id: UUID) -> NodeMedia | None:
    """The media of a node, read inside its delete (jobs go with the node by cascade)."""
    row = await db.fetch_one(
        "SELECT project_id, data->>'image_key' AS image_key FROM nodes WHERE id = :n",
        {"n": node_id},
    )
    if row is None:
        return None
    jobs = await db.fetch_all("SELECT id FROM jobs WHERE node_id = :n", {"n": node_id})
    takes = await db.fetch_all("SELECT media_key FROM takes WHERE node_id = :n", {"n": node_id})
    project_id: UUID = row["project_id"]
    outputs = {video_key(project_id, r["id"]) for r in jobs}
    outputs.update(str(r["media_key"]) for r in takes)
    # an image node's upload is released apart (another node may share it); a take is the node's own
    image_key = row["image_key"] if row["image_key"] not in outputs else None
    return NodeMedia(project_id=project_id, video_keys=sorted(outputs), image_key=image_key)


async def release_upload(db: Database, project_id: UUID, key: str) -> bool:
    """Delete the upload at `key` if no node or job of its project still names it."""
    deleted = await db.fetch_val(
        "DELETE FROM uploads u WHERE u.project_id = :p AND u.key = :k "
        "AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.project_id = :p "
        "                AND n.data->>'image_key' = :k) "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.project_id = :p "
        "                AND j.params->>'image_key' = :k) "
        "RETURNING u.key",
        {"p": project_id, "k": key},
    )
    return deleted is not None
