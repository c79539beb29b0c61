"""The things a project is made of, in the one shape they have everywhere.

A row read from Postgres, the `data` of a logged event, a REST answer and a
websocket frame all carry these structs; only the presenter
(server/present.py) adds freshly signed `*_url`s beside the stored keys on
the way out. `version` on nodes and connections is the seq of the change that
last wrote them, so a client can tell which of two copies is newer.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class NodeType(enum.StrEnum):
    """What a node holds; should match node_type in schema.sql."""

    #: text that a video node uses as its prompt
    PROMPT = "prompt"
    #: an uploaded image a video node may start from
    IMAGE = "image"
    #: a generated video
    VIDEO = "video"


class NodeStatus(enum.StrEnum):
    """A node's generation state; should match node_status in schema.sql."""

    IDLE = "idle"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class JobStatus(enum.StrEnum):
    """Where a job is in its life; should match job_status in schema.sql.

    The allowed moves between these are the table in db/lifecycle.py.
    """

    #: saved and enqueued, no worker has it yet
    PENDING = "pending"
    #: a worker is rendering it
    PROCESSING = "processing"
    #: the result is stored
    COMPLETED = "completed"
    #: it ended with `error`
    FAILED = "failed"
    #: a user stopped it
    CANCELLED = "cancelled"


LIVE_STATUSES = (JobStatus.PENDING, JobStatus.PROCESSING)
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Project(msgspec.Struct, frozen=True):
    """A canvas: nodes and connections, and the counter of its changes."""

    id: UUID
    owner_id: UUID
    name: str
    seq: int
    created_at: datetime
    updated_at: datetime


class Node(msgspec.Struct, frozen=True):
    """One box on the canvas."""

    id: UUID
    project_id: UUID
    type: NodeType
    x: float
    y: float
    data: dict[str, Any]
    status: NodeStatus
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    #: the seq of the change that last wrote this node
    version: int = 0


class Connection(msgspec.Struct, frozen=True):
    """An edge from `source_id` to `target_id`."""

    id: UUID
    project_id: UUID
    source_id: UUID
    target_id: UUID
    created_at: datetime
    #: the seq of the change that created it
    version: int = 0


class JobStatusResponse(msgspec.Struct, frozen=True):
    """A job as clients see it: REST answers, events and snapshots."""

    job_id: UUID
    node_id: UUID
    project_id: UUID
    type: str
    status: JobStatus
    progress: float
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
