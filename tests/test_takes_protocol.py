"""The take kinds in the shared client rules, and the local image renderer."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime

from PIL import Image

from common import protocol
from common.protocol.mirror import ProjectState
from tasks.providers.images import ImageRequest
from tasks.providers.local_image import LocalImageRenderer, image_size_px

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PID = uuid.uuid4()


def node(take_id: uuid.UUID | None) -> protocol.Node:
    """A video node showing `take_id`."""
    return protocol.Node(
        id=NODE, project_id=PID, type=protocol.NodeType.VIDEO, x=0, y=0, data={},
        status=protocol.NodeStatus.COMPLETED, error_message=None, created_at=NOW,
        updated_at=NOW, active_take_id=take_id,
    )  # fmt: skip


NODE = uuid.uuid4()


def take(index: int) -> protocol.Take:
    """Take `index` of one job."""
    return protocol.Take(
        id=uuid.uuid4(), project_id=PID, node_id=NODE, job_id=None, index=index,
        media_key=f"videos/{PID}/{index}.mp4", mime_type="video/mp4", params={}, seed=index,
        created_by=None, created_at=NOW,
    )  # fmt: skip


def test_mirror_follows_takes() -> None:
    """job.completed adds its takes, node.active_take_changed and take.deleted update the node."""
    a, b = take(0), take(1)
    state = ProjectState(project_id=PID)
    state.apply_snapshot(
        protocol.Snapshot(project_id=PID, seq=1, nodes=[node(None)], connections=[], jobs=[])
    )
    job = protocol.JobStatusResponse(
        job_id=uuid.uuid4(), node_id=NODE, project_id=PID, type="video",
        status=protocol.JobStatus.COMPLETED, progress=1, result={}, error=None,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    state.apply_event(protocol.JobCompleted(job=job, node=node(a.id), takes=[a, b]))
    assert set(state.takes) == {a.id, b.id} and state.nodes[NODE].active_take_id == a.id
    state.apply_event(protocol.NodeActiveTakeChanged(node=node(b.id), take_id=b.id))
    assert state.nodes[NODE].active_take_id == b.id
    state.apply_event(protocol.TakeDeleted(take_id=b.id, node=node(a.id)))
    assert set(state.takes) == {a.id} and state.nodes[NODE].active_take_id == a.id
    assert protocol.KINDS["take.deleted"] is protocol.TakeDeleted


def test_local_images_follow_the_seed() -> None:
    """Images are PNGs of the asked shape; the same seed gives the same bytes, image i has seed + i."""
    renderer = LocalImageRenderer()
    request = ImageRequest(prompt="a lighthouse", aspect_ratio="9:16", number_of_images=2, seed=9)
    first = asyncio.run(renderer.generate(request))
    again = asyncio.run(renderer.generate(request))
    assert [o.data for o in first] == [o.data for o in again]
    assert first[0].data != first[1].data
    assert [o.seed for o in first] == [9, 10]
    with Image.open(io.BytesIO(first[0].data)) as image:
        assert (
            (image.format, image.size)
            == ("PNG", image_size_px("9:16", "1K"))
            == ("PNG", (576, 1024))
        )
