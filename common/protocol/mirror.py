"""The client's side of the protocol, without I/O: apply a frame, say what to send next.

Every client of canvasflow keeps the same rules — `canvasflow watch`
(server/watch.py), the bench clients, the test clients and drill followers —
and they keep them here, the way python-websockets keeps its protocol apart
from its I/O. The browser's static/cf-client.js keeps the same rules in
JavaScript; both are run against one file of frame sequences and the states
they must produce (tests/mirror_cases.json).

The rules:
- a snapshot replaces the project's state and sets its seq;
- an event applies only when its seq is seq + 1; a seq at or below seq is a
  duplicate to ignore; a seq beyond seq + 1 is a gap: subscribe again with
  `since` = seq (events arriving before the answer are ignored);
- `subscribed {seq}` confirms a resume; a seq other than ours means resync;
- a progress tick raises a live job's progress, never lowers it;
- `unsubscribed` (or `project.deleted`) ends the project; an `error` about a
  project ends it too (`access_revoked`: the user was removed), except
  `unavailable` and `rate_limited`, which retry after a backoff, and
  `forbidden_role`, which refused one action and leaves the subscription be;
- members come with the snapshot and change with `member.*` and
  `project.transferred` events; presence frames replace the listed users
  (all of them when `full`) and drop those in `left`;
- after a dropped connection: reconnect after a full-jitter backoff and
  resume every project with `since`; the close codes in FATAL_CLOSE mean
  retrying cannot help, so the client stops and says why.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from common.protocol import events as ev
from common.protocol.entities import (
    LIVE_STATUSES,
    Connection,
    JobStatusResponse,
    Member,
    Node,
    Take,
)
from common.protocol.frames import (
    ClientMessage,
    CloseCode,
    Error,
    ErrorCode,
    ServerMessage,
    Snapshot,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)
from common.protocol.presence import PresenceUpdate, PresenceUser

#: close codes after which reconnecting cannot help, and what the client should say
FATAL_CLOSE: dict[int, str] = {
    CloseCode.UNAUTHENTICATED: "unauthenticated",
    CloseCode.FORBIDDEN_ORIGIN: "forbidden",
    CloseCode.TOO_MANY_ERRORS: "too_many_errors",
}
#: error codes after which the subscription is sent again later, not ended
RETRY_ERRORS = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.RATE_LIMITED})
#: error codes that refused one action (a frame) and leave the subscription as it is
ACTION_ERRORS = frozenset({ErrorCode.FORBIDDEN_ROLE})
#: the backoff attempt a retried subscription waits as (0.5 s · 2² capped: up to 2 s)
RETRY_ATTEMPT = 2


def backoff_s(
    attempt: int,
    initial_s: float = 0.5,
    max_s: float = 4.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before reconnect attempt `attempt` (0-based): full jitter under a doubling cap."""
    return float(rand() * min(max_s, initial_s * 2**attempt))


@dataclass
class ProjectState:
    """A client's copy of one project, and how it got there (for tests and bench)."""

    project_id: UUID
    #: the seq this state reflects; None until the first snapshot
    seq: int | None = None
    nodes: dict[UUID, Node] = field(default_factory=dict)
    connections: dict[UUID, Connection] = field(default_factory=dict)
    jobs: dict[UUID, JobStatusResponse] = field(default_factory=dict)
    #: the takes the client has seen (the snapshot's, then each job's outputs)
    takes: dict[UUID, Take] = field(default_factory=dict)
    members: dict[UUID, Member] = field(default_factory=dict)
    #: who else has the project open (ephemeral: from presence frames)
    presence: dict[UUID, PresenceUser] = field(default_factory=dict)
    deleted: bool = False
    #: the server said no more frames come (unsubscribed, deleted, or an error)
    ended: bool = False
    #: a subscribe is out and its answer has not come yet
    pending: bool = True
    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    snapshots: int = 0
    last_error: Error | None = None
    #: subscribe with presence (who else is here), as a canvas does
    with_presence: bool = False

    def subscribe_frame(self) -> Subscribe:
        """The subscribe frame for this state: with `since` once it holds a seq."""
        return Subscribe(project_id=self.project_id, since=self.seq, presence=self.with_presence)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the state with a snapshot's."""
        self.seq = snap.seq
        self.nodes = {n.id: n for n in snap.nodes}
        self.connections = {c.id: c for c in snap.connections}
        self.jobs = {j.job_id: j for j in snap.jobs}
        self.takes = {t.id: t for t in snap.takes}
        self.members = {m.user_id: m for m in snap.members}
        self.snapshots += 1

    def apply_event(self, data: ev.Payload | ev.Opaque) -> None:
        """Apply one event's data (its seq was checked by the caller)."""
        if isinstance(data, ev.NodeCreated | ev.NodeUpdated):
            self.nodes[data.node.id] = data.node
        elif isinstance(data, ev.NodeDeleted):
            self.nodes.pop(data.node_id, None)
            for cid in data.connection_ids:
                self.connections.pop(cid, None)
            self.jobs = {k: j for k, j in self.jobs.items() if j.node_id != data.node_id}
            self.takes = {k: t for k, t in self.takes.items() if t.node_id != data.node_id}
        elif isinstance(data, ev.ConnectionCreated):
            self.connections[data.connection.id] = data.connection
        elif isinstance(data, ev.ConnectionDeleted):
            self.connections.pop(data.connection_id, None)
        elif isinstance(data, ev.JobChange):
            self.jobs[data.job.job_id] = data.job
            self.nodes[data.node.id] = data.node
            if isinstance(data, ev.JobCompleted):
                self.takes.update((t.id, t) for t in data.takes)
        elif isinstance(data, ev.NodeActiveTakeChanged):
            self.nodes[data.node.id] = data.node
        elif isinstance(data, ev.TakeDeleted):
            self.takes.pop(data.take_id, None)
            self.nodes[data.node.id] = data.node
        elif isinstance(data, ev.ProjectDeleted):
            self.deleted = True
        elif isinstance(data, ev.MemberAdded | ev.MemberUpdated):
            self.members[data.member.user_id] = data.member
        elif isinstance(data, ev.MemberRemoved):
            self.members.pop(data.user_id, None)
            self.presence.pop(data.user_id, None)
        elif isinstance(data, ev.ProjectTransferred):
            self.members[data.owner.user_id] = data.owner
            self.members[data.previous_owner.user_id] = data.previous_owner
        # ProjectUpdated and kinds this version does not know change nothing kept here

    def apply_presence(self, update: PresenceUpdate) -> None:
        """Apply a presence frame: the whole list, or the users that changed and left."""
        if update.full:
            self.presence = {}
        for user in update.users:
            self.presence[user.user_id] = user
        for user_id in update.left:
            self.presence.pop(user_id, None)


@dataclass
class Step:
    """What one frame did: the project it changed (and why), and what to send."""

    #: frames to send now
    send: list[ClientMessage] = field(default_factory=list)
    #: frames to send after a delay (seconds): a retried subscription
    later: list[tuple[float, ClientMessage]] = field(default_factory=list)
    #: the project whose state changed, and the reason ("snapshot", an event kind, …)
    changed: ProjectState | None = None
    reason: str = ""


@dataclass
class Reconnect:
    """Open a new connection after `delay_s`, then send `Mirror.resume()`."""

    delay_s: float


@dataclass
class Stop:
    """Do not reconnect: retrying cannot help (`reason` says why)."""

    reason: str


class Mirror:
    """The projects a client follows over one (reconnecting) connection."""

    def __init__(
        self,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.projects: dict[UUID, ProjectState] = {}
        self.attempt = 0
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.rand = rand

    def _backoff(self, attempt: int) -> float:
        return backoff_s(attempt, self.initial_backoff_s, self.max_backoff_s, self.rand)

    def subscribe(self, project_id: UUID, presence: bool = False) -> list[ClientMessage]:
        """Follow a project (again: its state is kept and resumed with `since`)."""
        state = self.projects.setdefault(project_id, ProjectState(project_id))
        state.ended, state.pending = False, True
        state.with_presence = presence
        return [state.subscribe_frame()]

    def unsubscribe(self, project_id: UUID) -> list[ClientMessage]:
        """Stop following a project."""
        self.projects.pop(project_id, None)
        return [Unsubscribe(project_id=project_id)]

    def resume(self) -> list[ClientMessage]:
        """A (re)opened connection: subscribe every project not ended, with `since` where held."""
        out: list[ClientMessage] = []
        for state in self.projects.values():
            if not state.ended:
                state.pending = True
                out.append(state.subscribe_frame())
        return out

    def receive(self, message: ServerMessage) -> Step:
        """Apply one server frame."""
        # the server answers: the connection works, so the backoff starts over
        self.attempt = 0
        project_id = getattr(message, "project_id", None)
        state = self.projects.get(project_id) if project_id is not None else None
        if state is None or state.ended:
            if isinstance(message, Error) and message.code == ErrorCode.RATE_LIMITED:
                # not about one project: resend what is still unanswered, later
                delay = self._backoff(RETRY_ATTEMPT)
                later: list[tuple[float, ClientMessage]] = [
                    (delay, s.subscribe_frame()) for s in self.projects.values() if s.pending
                ]
                return Step(later=later)
            return Step()
        if isinstance(message, Snapshot):
            state.apply_snapshot(message)
            state.pending = False
            return Step(changed=state, reason="snapshot")
        if isinstance(message, Subscribed):
            state.pending = False
            if state.seq != message.seq:
                return self._resync(state)
            return Step(changed=state, reason="subscribed")
        if isinstance(message, ev.Event):
            return self._event(state, message)
        if isinstance(message, ev.JobProgress):
            job = state.jobs.get(message.job_id)
            if job is None or job.status not in LIVE_STATUSES:
                return Step()
            # progress only ever rises; position and ETA take the newest figures
            changes: dict[str, object] = {}
            if message.progress > job.progress:
                changes.update(progress=message.progress, progress_estimated=message.estimated)
            if message.queue_position is not None and message.queue_position != job.queue_position:
                changes["queue_position"] = message.queue_position
            if message.eta_s is not None and message.eta_s != job.eta_s:
                changes["eta_s"] = message.eta_s
            if not changes:
                return Step()
            state.jobs[job.job_id] = msgspec.structs.replace(job, **changes)
            return Step(changed=state, reason="job.progress")
        if isinstance(message, PresenceUpdate):
            state.apply_presence(message)
            return Step(changed=state, reason="presence")
        if isinstance(message, Unsubscribed):
            state.ended = True
            return Step(changed=state, reason="ended")
        if isinstance(message, Error) and message.code in ACTION_ERRORS:
            state.last_error = message
            return Step()
        if isinstance(message, Error):
            state.pending = False
            state.last_error = message
            if message.code in RETRY_ERRORS:
                return Step(later=[(self._backoff(RETRY_ATTEMPT), state.subscribe_frame())])
            state.ended = True
            return Step(changed=state, reason="ended")
        return Step()

    def _event(self, state: ProjectState, event: ev.AnyEvent) -> Step:
        if state.pending or state.seq is None:
            return Step()  # before our snapshot, or while a resubscribe is out
        if event.seq <= state.seq:
            state.duplicates.append(event.seq)
            return Step()
        if event.seq != state.seq + 1:
            state.gaps.append((state.seq, event.seq))
            return self._resync(state)
        state.apply_event(event.data)
        state.seq = event.seq
        state.applied.append(event.seq)
        return Step(changed=state, reason=event.kind)

    def _resync(self, state: ProjectState) -> Step:
        """Ask again from our seq: the server replays what we missed."""
        state.pending = True
        return Step(send=[state.subscribe_frame()])

    def closed(self, code: int | None) -> Reconnect | Stop:
        """The connection ended with `code` (None: no close frame): come back, or stop."""
        fatal = FATAL_CLOSE.get(code) if code is not None else None
        if fatal is not None:
            return Stop(fatal)
        delay = self._backoff(self.attempt)
        self.attempt += 1
        return Reconnect(delay)
