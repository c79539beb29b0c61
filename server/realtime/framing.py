"""Websocket framing: a server message as the bytes of one frame. Plain code: no I/O.

A server frame is never masked, so an event's frame is the same bytes for every
client: the channel builds it once and every outbox queues that one object
(server/realtime/wire.py writes it to each socket as is).
"""

from __future__ import annotations

import struct

from common.protocol import frames

_FIN_TEXT = 0x81


def frame_text(payload: bytes) -> bytes:
    """`payload` (UTF-8 JSON) as one unmasked, final websocket text frame."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, n) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, n) + payload


def payload_of(frame: bytes) -> bytes:
    """The payload of a frame that `frame_text` built (tests and tools read frames back)."""
    n = frame[1] & 0x7F
    return frame[2 + {126: 2, 127: 8}.get(n, 0) :]


def encode_frame(message: frames.ServerMessage) -> bytes:
    """A server message as one websocket text frame, ready for the socket."""
    return frame_text(frames.encode_bytes(message))
