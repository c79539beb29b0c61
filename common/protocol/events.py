"""Every kind of seq'd change, one struct each, and the envelope that carries them.

An event is born in db/changes.py (`publish_change`), logged in Postgres's
`events` table, published on the project's Redis channel and delivered by the
hub (server/realtime/) as an `event` frame. The bus and the wire carry the
same struct, `Event`:

    {"type": "event", "project_id": "…", "seq": 21, "kind": "node.deleted",
     "data": {"node_id": "…", "connection_ids": ["…"]}}

(the log keeps `kind` and `data` in columns of their own). On the way out the
hub only signs media URLs into `data` (server/present.py).

The union is tagged externally: `kind` sits beside `data`, as the wire has
always had it, and names the struct `data` decodes into. `KINDS` maps each
kind to its struct; nothing else in canvasflow spells a kind as a string.
Progress ticks are not events: they have no seq and are never logged.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeAlias, TypeVar
from uuid import UUID

import msgspec

from common.protocol.entities import Connection, JobStatusResponse, Member, Node, Project, Take


class Payload(msgspec.Struct, frozen=True):
    """The `data` of one kind of event; subclasses set `kind`."""

    kind: ClassVar[str]


class ProjectUpdated(Payload, frozen=True):
    """The project was renamed."""

    kind: ClassVar[str] = "project.updated"
    project: Project


class ProjectDeleted(Payload, frozen=True):
    """The project and everything in it are gone: the last event of its stream."""

    kind: ClassVar[str] = "project.deleted"
    project_id: UUID


class NodeCreated(Payload, frozen=True):
    """A node was added."""

    kind: ClassVar[str] = "node.created"
    node: Node


class NodeUpdated(Payload, frozen=True):
    """A node was moved, edited, or given media; `node` is all of it as it is now."""

    kind: ClassVar[str] = "node.updated"
    node: Node


class NodeDeleted(Payload, frozen=True):
    """A node went, and with it these connections and its jobs."""

    kind: ClassVar[str] = "node.deleted"
    node_id: UUID
    connection_ids: list[UUID]


class ConnectionCreated(Payload, frozen=True):
    """Two nodes were wired."""

    kind: ClassVar[str] = "connection.created"
    connection: Connection


class ConnectionDeleted(Payload, frozen=True):
    """A wire was removed."""

    kind: ClassVar[str] = "connection.deleted"
    connection_id: UUID


class JobChange(Payload, frozen=True):
    """A job moved to a new status; `node` is its node as it is now."""

    job: JobStatusResponse
    node: Node


class JobCreated(JobChange, frozen=True):
    """Generate was pressed: the job is pending, the node processing."""

    kind: ClassVar[str] = "job.created"


class JobStarted(JobChange, frozen=True):
    """A worker claimed the job (again, after a takeover or a retry)."""

    kind: ClassVar[str] = "job.started"


class JobCompleted(JobChange, frozen=True):
    """The result is stored: every output is a new take, the first one active on the node."""

    kind: ClassVar[str] = "job.completed"
    #: the job's outputs, in index order (empty only in events logged before takes)
    takes: list[Take] = []


class JobFailed(JobChange, frozen=True):
    """The job ended with `job.error`; the node is failed with the same message."""

    kind: ClassVar[str] = "job.failed"


class JobCancelled(JobChange, frozen=True):
    """A user stopped the job; the node is idle."""

    kind: ClassVar[str] = "job.cancelled"


class NodeActiveTakeChanged(Payload, frozen=True):
    """A user chose which take a node shows (and its downstream nodes consume)."""

    kind: ClassVar[str] = "node.active_take_changed"
    #: the node as it is now: `active_take_id` is `take_id`, its media key the take's
    node: Node
    take_id: UUID


class TakeDeleted(Payload, frozen=True):
    """A take and its media are gone; `node` as it is now (another take active, or none)."""

    kind: ClassVar[str] = "take.deleted"
    take_id: UUID
    node: Node


class MemberAdded(Payload, frozen=True):
    """Someone joined the project (added by the owner, or by accepting an invite); `by` did it."""

    kind: ClassVar[str] = "member.added"
    member: Member
    by: UUID


class MemberUpdated(Payload, frozen=True):
    """A member's role changed; the hub re-checks what their open subscriptions may do."""

    kind: ClassVar[str] = "member.updated"
    member: Member
    by: UUID


class MemberRemoved(Payload, frozen=True):
    """A member was removed (or left): their subscriptions end right after this event."""

    kind: ClassVar[str] = "member.removed"
    user_id: UUID
    by: UUID


class ProjectTransferred(Payload, frozen=True):
    """The owner handed the project over: `owner` is the new one, `previous_owner` an editor."""

    kind: ClassVar[str] = "project.transferred"
    project: Project
    owner: Member
    previous_owner: Member
    by: UUID


EventData: TypeAlias = (
    ProjectUpdated
    | ProjectDeleted
    | NodeCreated
    | NodeUpdated
    | NodeDeleted
    | ConnectionCreated
    | ConnectionDeleted
    | JobCreated
    | JobStarted
    | JobCompleted
    | JobFailed
    | JobCancelled
    | NodeActiveTakeChanged
    | TakeDeleted
    | MemberAdded
    | MemberUpdated
    | MemberRemoved
    | ProjectTransferred
)

#: kind → the struct its `data` decodes into (the union above, by tag)
KINDS: dict[str, type[Payload]] = {
    cls.kind: cls
    for cls in (
        ProjectUpdated,
        ProjectDeleted,
        NodeCreated,
        NodeUpdated,
        NodeDeleted,
        ConnectionCreated,
        ConnectionDeleted,
        JobCreated,
        JobStarted,
        JobCompleted,
        JobFailed,
        JobCancelled,
        NodeActiveTakeChanged,
        TakeDeleted,
        MemberAdded,
        MemberUpdated,
        MemberRemoved,
        ProjectTransferred,
    )
}

#: the data of an event this version does not know the kind of (a newer process published
#: it during a rolling deploy): kept as the JSON it came as and passed through untouched
Opaque: TypeAlias = msgspec.Raw

P = TypeVar("P", bound=Payload)
D = TypeVar("D", bound="Payload | Opaque", covariant=True)


class Event(msgspec.Struct, Generic[D], frozen=True, tag="event", tag_field="type"):
    """One seq'd change of a project, as logged, published and delivered.

    Apply it when `seq` is the client's seq + 1. A seq at or below the
    client's is a duplicate to ignore; a seq above seq + 1 means the client
    missed something and should subscribe again with `since` set to the last
    seq it applied. A client that does not know a `kind` still advances its
    seq past it.
    """

    project_id: UUID
    seq: int
    kind: str
    data: D


def event_of(project_id: UUID, seq: int, data: P) -> Event[P]:
    """The event carrying `data`, its kind taken from the payload's type."""
    return Event(project_id=project_id, seq=seq, kind=data.kind, data=data)


#: an event as received: its data typed by kind, or Opaque for a kind this version lacks
AnyEvent: TypeAlias = Event[Payload | Opaque]


#: the `type` of a progress tick (a frame of its own, not an event kind)
PROGRESS_TYPE = "job.progress"


class JobProgress(
    msgspec.Struct, frozen=True, tag=PROGRESS_TYPE, tag_field="type", omit_defaults=True
):
    """How far a live job is: ephemeral (no seq, not logged), may be dropped.

    A running job's tick carries `progress` (0 to 1), `estimated` when canvasflow
    estimated it because the provider reports none; a pending job's tick carries
    its `queue_position`. Both carry `eta_s` when the job's kind has measured
    durations. Fields left out are unchanged.
    """

    project_id: UUID
    job_id: UUID
    progress: float
    estimated: bool = False
    queue_position: int | None = None
    eta_s: float | None = None


class RawEvent(msgspec.Struct, frozen=True, tag="event", tag_field="type"):
    """An event whose `data` is still JSON text (decoded by kind in a second step)."""

    project_id: UUID
    seq: int
    kind: str
    data: msgspec.Raw


_encoder = msgspec.json.Encoder()
_bus = msgspec.json.Decoder(RawEvent | JobProgress)
_payloads = {kind: msgspec.json.Decoder(cls) for kind, cls in KINDS.items()}


def encode_bus(message: Event[P] | JobProgress | Payload) -> bytes:
    """JSON bytes of an event, a progress tick or a payload (the bus and the log carry these)."""
    return _encoder.encode(message)


def decode_payload(kind: str, data: bytes | str) -> Payload | Opaque:
    """The typed `data` of an event of `kind`; Opaque (the JSON as is) for an unknown kind."""
    decoder = _payloads.get(kind)
    if decoder is None:
        return msgspec.Raw(data.encode() if isinstance(data, str) else data)
    return decoder.decode(data)


def typed(raw: RawEvent) -> AnyEvent:
    """The event with its data decoded into the struct of its kind."""
    data = decode_payload(raw.kind, raw.data)
    return Event(project_id=raw.project_id, seq=raw.seq, kind=raw.kind, data=data)


def decode_bus(payload: bytes | str) -> AnyEvent | JobProgress:
    """What arrives on a project's Redis channel: an event, or a progress tick."""
    message = _bus.decode(payload)
    return typed(message) if isinstance(message, RawEvent) else message
