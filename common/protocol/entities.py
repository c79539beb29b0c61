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
    #: a generated image (its active take feeds video nodes' image ports)
    IMAGE_GEN = "image_gen"


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


class Role(enum.StrEnum):
    """What a member of a project may do; should match member_role in schema.sql.

    The rights of each role are one table, server/access.py's `RIGHTS`.
    """

    #: one per project: everything an editor may, plus members, rename, delete, transfer
    OWNER = "owner"
    #: edit, upload, generate and cancel
    EDITOR = "editor"
    #: read and subscribe (and show a cursor) only
    VIEWER = "viewer"


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


class MemberProject(Project, frozen=True):
    """A project as one of its members sees it in their list: with their role."""

    role: Role


class Member(msgspec.Struct, frozen=True):
    """Someone who may open a project, and what they may do there."""

    user_id: UUID
    email: str
    role: Role
    added_at: datetime


class Actor(msgspec.Struct, frozen=True):
    """Who did something (started a job)."""

    user_id: UUID
    email: str


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
    #: the take the node shows and downstream nodes consume; None when it has none
    active_take_id: UUID | None = None


class Connection(msgspec.Struct, frozen=True):
    """An edge from `source_id`'s output into the input port `target_port` of `target_id`."""

    id: UUID
    project_id: UUID
    source_id: UUID
    target_id: UUID
    created_at: datetime
    #: the seq of the change that created it
    version: int = 0
    #: the target's input port (common/protocol/ports.py); "" only in data logged before ports
    target_port: str = ""


class Take(msgspec.Struct, frozen=True):
    """One output of a job, kept on its node: a video or an image with how it was made.

    `media_url` is filled in by the presenter only (signed whenever the take is
    sent); the stored shape holds the key.
    """

    id: UUID
    project_id: UUID
    node_id: UUID
    #: the job that made it (None for takes migrated without one, or whose job went)
    job_id: UUID | None
    #: its place among the outputs of its job (0-based)
    index: int
    media_key: str
    mime_type: str
    #: the request it was made with (prompt, resolution, duration, inputs, …)
    params: dict[str, Any]
    #: the seed that made it, when known
    seed: int | None
    #: the user who pressed Generate (None for migrated takes)
    created_by: UUID | None
    created_at: datetime
    #: the seq of the change that created it; takes sort newest first by it
    version: int = 0
    media_url: str | None = None


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
    #: who pressed Generate; None for jobs older than teams, or an account since deleted
    created_by: Actor | None = None
    #: pending: its place among all pending jobs, 1 = next to start (None once started)
    queue_position: int | None = None
    #: live: seconds until it is expected to complete, from measured durations of its
    #: kind (None when none of its kind has finished yet, or once it has ended)
    eta_s: float | None = None
    #: `progress` is canvasflow's estimate (the provider reports none): below 1 until done
    progress_estimated: bool = False
    #: what the job reserved of its user's budget at submit, in `currency`
    reserved_cost: float | None = None
    #: what it finally cost: set when it ends (0 when it failed or was cancelled)
    final_cost: float | None = None
    currency: str = "USD"
