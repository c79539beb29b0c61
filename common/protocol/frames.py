"""The websocket frames of `GET /ws`, in both directions.

Every frame is a JSON object in one text frame, and its `type` member says
which struct it is (msgspec tagged unions, `tag_field="type"`). The `event`
and `job.progress` frames are the structs of common/protocol/events.py, the
same ones the Redis bus carries.

Client → server:

- `subscribe {project_id, since?, presence?}`: start receiving a project's changes
  (and, with `presence: true`, who else is here).
- `unsubscribe {project_id}`: stop.
- `ping`: the server answers `pong` (an application-level liveness check;
  the server also sends websocket pings of its own).
- `presence {project_id, cursor?, selection?, editing?}`: this tab's cursor,
  selection and editing marker (common/protocol/presence.py).

Server → client:

- `snapshot {project_id, seq, nodes, connections, jobs, members}`: the whole
  state of a project as of `seq`.
- `subscribed {project_id, seq}`: the subscription is live and the client's
  own state as of `seq` is current (sent instead of a snapshot when the
  client resumed with `since`).
- `event {project_id, seq, kind, data}`: one change; seqs of a project are
  consecutive.
- `job.progress {project_id, job_id, progress}`: an ephemeral progress tick
  (no seq; may be dropped).
- `unsubscribed {project_id}`: the subscription ended (asked for, or the
  project was deleted).
- `presence {project_id, users, left, full}`: who is here (ephemeral, may be
  dropped; a `full` one follows a subscribe).
- `pong`: the answer to `ping`.
- `error {code, message, project_id?}`: a request failed; the connection
  stays open unless a close follows.

The ordering rules (what `seq` promises, how to resume) and every close and
error code are documented in docs/protocol.md, sections "Websocket" and
"Event kinds" (tests/test_protocol_docs.py checks those tables against the
structs and enums here).
"""

from __future__ import annotations

import enum
from typing import Annotated
from uuid import UUID

import msgspec

from common.errors import CanvasflowError
from common.protocol.entities import Connection, JobStatusResponse, Member, Node, Take
from common.protocol.events import AnyEvent, JobProgress, RawEvent, typed
from common.protocol.presence import Presence, PresenceUpdate

#: the most a client frame may weigh, in bytes of UTF-8 (uvicorn's ws_max_size too)
MAX_MESSAGE_BYTES = 64 * 1024


class CloseCode(enum.IntEnum):
    """Websocket close codes the server uses."""

    #: the client asked to close, or the server has nothing more to say
    NORMAL = 1000
    #: the process is stopping (SIGTERM / SIGINT): reconnect, to another process
    GOING_AWAY = 1001
    #: a text frame that is not valid UTF-8 (sent by uvicorn)
    INVALID_PAYLOAD = 1007
    #: a client frame exceeded 64 KiB
    MESSAGE_TOO_BIG = 1009
    #: an unexpected server error
    INTERNAL_ERROR = 1011
    #: the server stopped without a signal (sent by uvicorn): reconnect
    SERVICE_RESTART = 1012
    #: the server cannot check the session right now (Postgres unreachable): retry later
    TRY_AGAIN_LATER = 1013
    #: the client could not keep up with its events: reconnect and resume with `since`
    SLOW_CONSUMER = 4008
    #: the client sent too many bad frames
    TOO_MANY_ERRORS = 4400
    #: no valid session cookie or bearer token on the handshake, or the session of an open
    #: connection was logged out or expired: log in, do not retry
    UNAUTHENTICATED = 4401
    #: a browser handshake from an origin that is not allowed: do not retry
    FORBIDDEN_ORIGIN = 4403


class ErrorCode(enum.StrEnum):
    """The `code` of an `error` frame."""

    #: the frame is not JSON
    MALFORMED_JSON = "malformed_json"
    #: the frame's `type` is not one the server knows
    UNKNOWN_TYPE = "unknown_type"
    #: a JSON object without a string `type`, a binary frame, a missing or
    #: unknown member, or a member of the wrong type (the message names it)
    INVALID_MESSAGE = "invalid_message"
    #: no such project for this user (a stranger's project looks the same)
    PROJECT_NOT_FOUND = "project_not_found"
    #: more frames than the rate limit allows; this one was ignored
    RATE_LIMITED = "rate_limited"
    #: the connection already holds the most subscriptions allowed
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    #: the server cannot reach Postgres right now; retry later
    UNAVAILABLE = "unavailable"
    #: the caller's role in the project does not allow this (a viewer's `editing` marker);
    #: the subscription stays
    FORBIDDEN_ROLE = "forbidden_role"
    #: the caller was removed from the project: the subscription ended with the event
    #: that removed them, and no frame of the project follows
    ACCESS_REVOKED = "access_revoked"
    #: a `presence` frame for a project this connection does not follow
    NOT_SUBSCRIBED = "not_subscribed"


#: most recent takes of each node a snapshot carries (older ones: GET /api/nodes/{id}/takes)
SNAPSHOT_TAKES = 8


# -- client → server --------------------------------------------------------


class Subscribe(
    msgspec.Struct,
    tag="subscribe",
    tag_field="type",
    forbid_unknown_fields=True,
    frozen=True,
    omit_defaults=True,
):
    """Start receiving `project_id`'s changes.

    Without `since` the server answers with a `snapshot`, then `event`s with
    greater seqs. With `since` (the seq of the state the client already
    holds) the server answers `subscribed {seq: since}` and replays the
    events after it, or sends a `snapshot` when it cannot (the log no longer
    reaches back that far, or `since` is ahead of the project). Subscribing
    again to a project the connection already follows replaces that
    subscription. With `presence: true` the subscription also joins the
    project's presence (common/protocol/presence.py).
    """

    project_id: UUID
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: also receive who else is here (`presence` frames, a `full` one first) and be shown
    #: to them; a canvas sets it, a terminal follower need not
    presence: bool = False


class Unsubscribe(
    msgspec.Struct, tag="unsubscribe", tag_field="type", forbid_unknown_fields=True, frozen=True
):
    """Stop receiving `project_id`'s changes; answered with `unsubscribed`."""

    project_id: UUID


class Ping(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True, frozen=True):
    """Ask for a `pong`."""


ClientMessage = Subscribe | Unsubscribe | Ping | Presence
_CLIENT_TYPES = frozenset({"subscribe", "unsubscribe", "ping", "presence"})


# -- server → client --------------------------------------------------------


class Snapshot(msgspec.Struct, tag="snapshot", tag_field="type", frozen=True):
    """A project's whole state as of `seq`: replace whatever the client held.

    `nodes` and `connections` have the shapes of the REST API (nodes with
    freshly signed `*_url`s beside their `*_key`s); `jobs` holds the latest job
    of each node; `takes` each node's most recent takes (at most
    SNAPSHOT_TAKES a node, newest first) and its active take wherever that is
    older; `members` who may open the project and their roles. Events that
    follow have seq > `seq`.
    """

    project_id: UUID
    seq: int
    nodes: list[Node]
    connections: list[Connection]
    jobs: list[JobStatusResponse]
    takes: list[Take] = []
    members: list[Member] = []


class Subscribed(msgspec.Struct, tag="subscribed", tag_field="type", frozen=True):
    """The subscription is live; the client's state as of `seq` is current.

    Sent when the client subscribed with `since`: `seq` equals `since`, and the
    events after it (replayed from the server's log, then live) follow.
    """

    project_id: UUID
    seq: int


class Unsubscribed(msgspec.Struct, tag="unsubscribed", tag_field="type", frozen=True):
    """No more frames of `project_id` follow (asked for, or the project was deleted)."""

    project_id: UUID


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    """The answer to `ping`."""


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True, omit_defaults=True):
    """A request failed (see ErrorCode); `project_id` names the project it concerned."""

    code: str
    message: str
    project_id: UUID | None = None


ServerMessage = (
    Snapshot | Subscribed | Unsubscribed | AnyEvent | JobProgress | PresenceUpdate | Pong | Error
)


# -- encoding and decoding --------------------------------------------------


class ProtocolError(CanvasflowError):
    """A client frame the server cannot act on; becomes an `error` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code: ErrorCode = code


_encoder = msgspec.json.Encoder()
_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
# an event's data is decoded by its kind in a second step (see events.typed)
_server_decoder = msgspec.json.Decoder(
    Snapshot | Subscribed | Unsubscribed | RawEvent | JobProgress | PresenceUpdate | Pong | Error
)


def encode(message: ServerMessage | ClientMessage) -> str:
    """A message as the text of one websocket frame."""
    return _encoder.encode(message).decode()


def encode_bytes(message: ServerMessage | ClientMessage) -> bytes:
    """A message as the UTF-8 of one websocket frame (what the hub frames and sends)."""
    return _encoder.encode(message)


def decode_client(text: str | bytes) -> ClientMessage:
    """A client frame as its struct, or ProtocolError saying what is wrong with it."""
    try:
        return _client_decoder.decode(text)
    except msgspec.ValidationError as exc:
        # the slow path, only for bad frames: find out which kind of bad
        try:
            raw = msgspec.json.decode(text)
        except RecursionError:
            raise _too_deep() from None
        except msgspec.DecodeError:
            # valid JSON up to a point (`1x`): the typed pass stopped at the wrong type first
            raise _malformed() from None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                'A frame is a JSON object with a string "type", e.g. {"type": "ping"}.',
            ) from None
        if raw["type"] not in _CLIENT_TYPES:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE,
                f"Unknown type {raw['type']!r}; "
                "expected one of: subscribe, unsubscribe, ping, presence.",
            ) from None
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
    except msgspec.DecodeError:
        raise _malformed() from None
    except RecursionError:
        # msgspec stops at its nesting limit; left alone this killed the connection with 1011
        raise _too_deep() from None


def _malformed() -> ProtocolError:
    return ProtocolError(ErrorCode.MALFORMED_JSON, "The frame is not valid JSON.")


def _too_deep() -> ProtocolError:
    return ProtocolError(
        ErrorCode.INVALID_MESSAGE, "The frame nests too deeply; none of ours nests."
    )


def decode_server(text: str | bytes) -> ServerMessage:
    """A server frame as its struct, an event's data typed by its kind (for clients)."""
    message = _server_decoder.decode(text)
    return typed(message) if isinstance(message, RawEvent) else message
