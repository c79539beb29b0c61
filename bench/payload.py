"""The bytes of a `node.updated` event frame, for the bare server to send what the hub sends."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from common.protocol.events import NodeUpdated

_encode = msgspec.json.Encoder().encode


def node_updated_frame(project_id: str, seq: int, t: float) -> bytes:
    """An `event` frame shaped like the hub's for a PATCH of a node's data with stamp `t`.

    The shape follows db.changes.Event wrapped as the protocol's `event` frame:
    `{type, project_id, seq, kind, data: {node: Node}}`, Node as db/nodes.py defines it.
    """
    now = datetime.now(UTC).isoformat()
    node: dict[str, Any] = {
        "id": str(uuid.UUID(int=seq)),
        "project_id": project_id,
        "type": "prompt",
        "x": 0.0,
        "y": 0.0,
        "data": {"prompt": "a benchmark", "t": t},
        "status": "idle",
        "error_message": None,
        "created_at": now,
        "updated_at": now,
    }
    frame = {
        "type": "event",
        "project_id": project_id,
        "seq": seq,
        "kind": NodeUpdated.kind,
        "data": {"node": node},
    }
    return _encode(frame)


def stamp() -> float:
    """The bench's one clock (see bench.clients)."""
    return time.monotonic()


def restamp(template: dict[str, Any], seq: int, t: float) -> bytes:
    """`template` (an event frame the hub sent) with a new seq and stamp: the same bytes
    but for those two numbers."""
    frame = dict(template)
    frame["seq"] = seq
    data = dict(frame.get("data") or {})
    node = data.get("node")
    if isinstance(node, dict) and isinstance(node.get("data"), dict):
        data["node"] = dict(node, data=dict(node["data"], t=t))
    else:
        data["t"] = t
    frame["data"] = data
    return _encode(frame)
