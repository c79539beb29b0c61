"""common/protocol: every frame's JSON shape, and how bad client frames are classified."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest

from common import protocol
from common.protocol import ErrorCode, ProtocolError

PID = UUID("9b1e4c52-0000-4000-8000-000000000001")
JOB = UUID("5d2c0000-0000-4000-8000-000000000002")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "ping"}', protocol.Ping()),
        (f'{{"type": "subscribe", "project_id": "{PID}"}}', protocol.Subscribe(project_id=PID)),
        (
            f'{{"type": "subscribe", "project_id": "{PID}", "since": 0}}',
            protocol.Subscribe(project_id=PID, since=0),
        ),
        (
            f'{{"type": "subscribe", "project_id": "{PID}", "since": null}}',
            protocol.Subscribe(project_id=PID),
        ),
        (f'{{"type": "unsubscribe", "project_id": "{PID}"}}', protocol.Unsubscribe(project_id=PID)),
        (
            f'{{"type": "subscribe", "project_id": "{PID}", "presence": true}}',
            protocol.Subscribe(project_id=PID, presence=True),
        ),
        (
            f'{{"type": "presence", "project_id": "{PID}", "cursor": {{"x": 1.5, "y": -2}}, '
            f'"selection": ["{JOB}"], "editing": null}}',
            protocol.Presence(
                project_id=PID, cursor=protocol.Cursor(x=1.5, y=-2), selection=[JOB], editing=None
            ),
        ),
        (f'{{"type": "presence", "project_id": "{PID}"}}', protocol.Presence(project_id=PID)),
    ],
)
def test_client_frames_decode(text: str, expected: protocol.ClientMessage) -> None:
    """Each documented client frame decodes to its struct."""
    assert protocol.decode_client(text) == expected
    assert protocol.decode_client(text.encode()) == expected


@pytest.mark.parametrize(
    ("text", "code", "in_message"),
    [
        ("{nope", ErrorCode.MALFORMED_JSON, "not valid JSON"),
        ("", ErrorCode.MALFORMED_JSON, "not valid JSON"),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE, '"type"'),
        ('{"project_id": "x"}', ErrorCode.INVALID_MESSAGE, '"type"'),
        ('{"type": 7}', ErrorCode.INVALID_MESSAGE, '"type"'),
        ('{"type": "subscribe!"}', ErrorCode.UNKNOWN_TYPE, "subscribe!"),
        ('{"type": "subscribe", "project_id": 5}', ErrorCode.INVALID_MESSAGE, "$.project_id"),
        ('{"type": "subscribe", "project_id": "zz"}', ErrorCode.INVALID_MESSAGE, "$.project_id"),
        ('{"type": "subscribe"}', ErrorCode.INVALID_MESSAGE, "project_id"),
        (
            f'{{"type": "subscribe", "project_id": "{PID}", "since": -1}}',
            ErrorCode.INVALID_MESSAGE,
            "$.since",
        ),
        (
            f'{{"type": "subscribe", "project_id": "{PID}", "since": "3"}}',
            ErrorCode.INVALID_MESSAGE,
            "$.since",
        ),
        ('{"type": "ping", "extra": 1}', ErrorCode.INVALID_MESSAGE, "extra"),
        (
            f'{{"type": "presence", "project_id": "{PID}", "selection": {[str(JOB)] * 101}}}'.replace(
                "'", '"'
            ),
            ErrorCode.INVALID_MESSAGE,
            "$.selection",
        ),
        (
            f'{{"type": "presence", "project_id": "{PID}", "cursor": {{"x": 1e8, "y": 0}}}}',
            ErrorCode.INVALID_MESSAGE,
            "$.cursor.x",
        ),
    ],
)
def test_bad_client_frames_are_classified(text: str, code: ErrorCode, in_message: str) -> None:
    """A bad frame raises ProtocolError with the documented code and a message naming the fault."""
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_client(text)
    assert caught.value.code == code
    assert in_message in caught.value.message


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (
            protocol.Snapshot(project_id=PID, seq=4, nodes=[], connections=[], jobs=[]),
            {
                "type": "snapshot",
                "project_id": str(PID),
                "seq": 4,
                "nodes": [],
                "connections": [],
                "jobs": [],
                "takes": [],
                "members": [],
            },
        ),
        (
            protocol.PresenceUpdate(
                project_id=PID,
                users=[
                    protocol.PresenceUser(
                        user_id=JOB,
                        email="ben@example.com",
                        color="#4363d8",
                        tabs=2,
                        cursor=protocol.Cursor(x=1.0, y=2.0),
                    )
                ],
                left=[PID],
            ),
            {
                "type": "presence",
                "project_id": str(PID),
                "users": [
                    {
                        "user_id": str(JOB),
                        "email": "ben@example.com",
                        "color": "#4363d8",
                        "tabs": 2,
                        "cursor": {"x": 1.0, "y": 2.0},
                        "selection": [],
                        "editing": None,
                    }
                ],
                "left": [str(PID)],
                "full": False,
            },
        ),
        (
            protocol.Subscribed(project_id=PID, seq=4),
            {"type": "subscribed", "project_id": str(PID), "seq": 4},
        ),
        (
            protocol.Unsubscribed(project_id=PID),
            {"type": "unsubscribed", "project_id": str(PID)},
        ),
        (
            protocol.event_of(PID, 5, protocol.NodeDeleted(node_id=JOB, connection_ids=[])),
            {
                "type": "event",
                "project_id": str(PID),
                "seq": 5,
                "kind": "node.deleted",
                "data": {"node_id": str(JOB), "connection_ids": []},
            },
        ),
        (
            protocol.JobProgress(project_id=PID, job_id=JOB, progress=0.5),
            {"type": "job.progress", "project_id": str(PID), "job_id": str(JOB), "progress": 0.5},
        ),
        (protocol.Pong(), {"type": "pong"}),
        (
            protocol.Error(code="rate_limited", message="slow down"),
            {"type": "error", "code": "rate_limited", "message": "slow down"},
        ),
        (
            protocol.Error(code="project_not_found", message="no", project_id=PID),
            {"type": "error", "code": "project_not_found", "message": "no", "project_id": str(PID)},
        ),
    ],
)
def test_server_frames_encode_to_the_documented_json(
    message: protocol.ServerMessage, wire: dict[str, object]
) -> None:
    """Each server frame encodes to the JSON docs/protocol.md shows, and decodes back."""
    text = protocol.encode(message)
    assert msgspec.json.decode(text) == wire
    assert protocol.decode_server(text) == message


def test_bus_payloads_are_the_wire_frames() -> None:
    """What db.changes publishes on Redis is byte for byte the frame a client receives."""
    tick = protocol.JobProgress(project_id=PID, job_id=JOB, progress=0.25)
    assert protocol.encode_bus(tick).decode() == protocol.encode(tick)
    event = protocol.event_of(PID, 5, protocol.ConnectionDeleted(connection_id=JOB))
    assert protocol.encode_bus(event).decode() == protocol.encode(event)
    assert protocol.decode_bus(protocol.encode_bus(event)) == event


def test_an_event_of_an_unknown_kind_passes_through_untouched() -> None:
    """A kind a newer process published decodes to its raw JSON and encodes back the same."""
    text = (
        f'{{"type":"event","project_id":"{PID}","seq":7,"kind":"node.sparkled","data":{{"a":[1]}}}}'
    )
    event = protocol.decode_server(text)
    assert isinstance(event, protocol.Event) and event.kind == "node.sparkled"
    assert isinstance(event.data, msgspec.Raw)
    assert protocol.encode(event) == text


def test_every_kind_names_one_struct() -> None:
    """KINDS maps each event kind to the struct of its own `kind`, and kinds are unique."""
    assert all(cls.kind == kind for kind, cls in protocol.KINDS.items())
    assert len(protocol.KINDS) == len({cls for cls in protocol.KINDS.values()})


def test_close_codes_are_distinct_and_in_range() -> None:
    """Every close code is unique, standard (1000-1015) or private (4000-4999)."""
    codes = [c.value for c in protocol.CloseCode]
    assert len(set(codes)) == len(codes)
    assert all(1000 <= c <= 1015 or 4000 <= c <= 4999 for c in codes)


def test_docs_list_every_close_and_error_code() -> None:
    """docs/protocol.md's websocket section has a row for every close code and error code."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = text.split("<!-- section: websocket")[1].split("<!-- end section: websocket -->")[0]
    for close in protocol.CloseCode:
        assert f"| {close.value} |" in section, f"close code {close.value} is not documented"
    for error in ErrorCode:
        assert f"| `{error.value}` |" in section, f"error code {error.value} is not documented"
