"""Fuzzing `GET /ws`: malformed, mistyped, huge, nested, binary and random frames at a live hub.

The fuzzed connection must get an `error` frame (or the plain answer of a
valid frame) for every frame, or a close code from docs/protocol.md; the
server must log no error of its own; and a well-behaved client following the
same project meanwhile must receive every event, gap-free.
"""

from __future__ import annotations

import asyncio
import logging
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import msgspec
import pytest
import websockets

from common import protocol
from common.protocol import CloseCode, ErrorCode
from db.changes import Store
from server.realtime import HubConfig
from tests.support.accounts import Account
from tests.support.services import Services
from tests.support.ws import Model, WsClient, add_node, follow, hub_server, new_project

SEED = 20261130
RANDOM_CASES = 300
#: close codes the protocol documents for a client's own bad frames
DOCUMENTED_CLOSES = {CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG}
#: uvicorn logs each invalid UTF-8 frame it refuses at error level; that one is expected
UVICORN_UTF8 = "Invalid UTF-8 sequence received from client."


@dataclass(frozen=True)
class Case:
    """One frame to send and what must come back."""

    name: str
    payload: str | bytes
    #: send bytes as a text frame (bad UTF-8 included) rather than a binary frame
    as_text: bool = True
    #: the error code that must answer it, or the close code that must end the connection;
    #: None when any documented answer will do (random input)
    error: str | None = None
    close: int | None = None


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


#: values of the wrong type (or out of range) for any field
WRONG = [None, 0, -1, 1.5, True, "", "x", "not-a-uuid", [], {}, ["a"], {"a": 1}, 2**64, -(2**70)]


def schema_cases() -> Iterator[Case]:
    """Wrong types for every field of every client message type in server/protocol.py."""
    pid = str(uuid4())
    for field in ("project_id", "since"):
        for bad in WRONG:
            if field == "since" and (bad is None or (type(bad) is int and bad >= 0)):
                continue  # null and any integer >= 0 are valid `since` values
            frame = {"type": "subscribe", "project_id": pid, field: bad}
            yield Case(f"subscribe.{field}={bad!r}", _json(frame), error=ErrorCode.INVALID_MESSAGE)
    for bad in WRONG:
        frame = {"type": "unsubscribe", "project_id": bad}
        yield Case(f"unsubscribe.project_id={bad!r}", _json(frame), error=ErrorCode.INVALID_MESSAGE)
    for bad in WRONG:
        # a `type` that is not a string is no message at all; a string is an unknown type
        code = ErrorCode.UNKNOWN_TYPE if isinstance(bad, str) else ErrorCode.INVALID_MESSAGE
        yield Case(f"type={bad!r}", _json({"type": bad}), error=code)
    for name in ("subscribe", "unsubscribe", "ping"):
        extra = {"type": name, "project_id": pid, "surprise": 1}
        if name == "ping":
            extra.pop("project_id")
        yield Case(f"{name} + unknown member", _json(extra), error=ErrorCode.INVALID_MESSAGE)
    for name in ("subscribe", "unsubscribe"):
        yield Case(f"{name} missing project_id", _json({"type": name}), error="invalid_message")
    for name in ("SUBSCRIBE", "subscribe ", "pong", "event", "snapshot", "x" * 1000):
        yield Case(f"type {name[:12]!r}", _json({"type": name}), error=ErrorCode.UNKNOWN_TYPE)
    for top in ("[]", "1", '"ping"', "null", "true", '[{"type": "ping"}]'):
        yield Case(f"top-level {top}", top, error=ErrorCode.INVALID_MESSAGE)
    for text in ("", "{", '{"type": "ping"', "{'type': 'ping'}", "NaN", '{"type": "ping"}}',
                 "1x", "[]]", '"ping" "pong"', '[1, 2'):  # fmt: skip
        yield Case(f"not JSON {text!r}", text, error=ErrorCode.MALFORMED_JSON)


def edge_cases() -> Iterator[Case]:
    """Bad UTF-8, oversized and deeply nested frames, binary frames."""
    yield Case(
        "bad UTF-8 in a text frame", b'{"type": "ping\xff"}', close=CloseCode.INVALID_PAYLOAD
    )
    yield Case("lone continuation byte", b"\x80", close=CloseCode.INVALID_PAYLOAD)
    yield Case("surrogate half as UTF-8", b'"\xed\xa0\x80"', close=CloseCode.INVALID_PAYLOAD)
    limit = protocol.MAX_MESSAGE_BYTES
    yield Case("one byte over the limit", "x" * (limit + 1), close=CloseCode.MESSAGE_TOO_BIG)
    # multi-byte characters: under the limit in characters, over it in bytes
    yield Case("over the limit in UTF-8", "é" * (limit // 2 + 1), close=CloseCode.MESSAGE_TOO_BIG)
    yield Case("1 MiB", '{"type": "ping", "pad": "' + "y" * (1 << 20) + '"}', close=1009)
    padded = _json({"type": "ping", "pad": "z" * (limit - 40)})
    assert len(padded) <= limit
    yield Case("just under the limit", padded, error=ErrorCode.INVALID_MESSAGE)
    depth = limit // 2 - 10
    yield Case("nested arrays", "[" * depth + "]" * depth, error=ErrorCode.INVALID_MESSAGE)
    nested_value = '{"type": "subscribe", "project_id": ' + "[" * 20000 + "]" * 20000 + "}"
    yield Case("nested member", nested_value, error=ErrorCode.INVALID_MESSAGE)
    nested_objects = '{"a": ' * 8000 + "1" + "}" * 8000
    yield Case("nested objects", nested_objects, error=ErrorCode.INVALID_MESSAGE)
    yield Case("binary ping", b'{"type": "ping"}', as_text=False, error=ErrorCode.INVALID_MESSAGE)
    yield Case("empty binary", b"", as_text=False, error=ErrorCode.INVALID_MESSAGE)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, sometimes shaped like one of our messages."""
    roll = rng.random()
    if depth < 4 and roll < 0.25:
        obj = {rng.choice(["type", "project_id", "since", "x", ""]): random_json(rng, depth + 1)
               for _ in range(rng.randint(0, 4))}  # fmt: skip
        if rng.random() < 0.5:
            obj["type"] = rng.choice(["subscribe", "unsubscribe", "ping", "pong", "?"])
        return obj
    if depth < 4 and roll < 0.35:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice([
        None, True, False, rng.randint(-(2**70), 2**70), rng.random() * 1e300, str(uuid4()),
        "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 20))),
        "".join(chr(rng.randint(0x80, 0xD7FF)) for _ in range(rng.randint(1, 8))),
    ])  # fmt: skip


def random_cases(rng: random.Random, count: int) -> Iterator[Case]:
    """Seeded random JSON, random text and random bytes (as text and as binary frames)."""
    for i in range(count):
        kind = i % 4
        if kind == 0:
            yield Case(f"random JSON #{i}", _json(random_json(rng)))
        elif kind == 1:
            text = "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(0, 64)))
            yield Case(f"random text #{i}", text)
        elif kind == 2:
            yield Case(f"random bytes as text #{i}", rng.randbytes(rng.randint(0, 64)))
        else:
            payload = rng.randbytes(rng.randint(0, 64))
            yield Case(f"random binary #{i}", payload, as_text=False, error="invalid_message")


class ErrorLog(logging.Handler):
    """Collects error records from the server's loggers (uvicorn's do not reach the root)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)


async def answer(client: WsClient) -> protocol.ServerMessage | int:
    """The next frame, or the close code if the server closed instead."""
    try:
        return await client.recv(timeout_s=10)
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code


@pytest.mark.timeout(90)
async def test_fuzzed_frames_get_errors_or_documented_closes_and_a_watcher_misses_nothing(
    services: Services, store: Store, alice: Account
) -> None:
    """Every fuzzed frame is answered with an error or a documented close; a watcher misses no event."""
    rng = random.Random(SEED)
    cases = [*schema_cases(), *edge_cases(), *random_cases(rng, RANDOM_CASES)]
    project_id = await new_project(store, alice.user_id)
    errors = ErrorLog()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(errors)
    # limits out of the way: every frame reaches the decoder (the limits have tests of their own)
    config = HubConfig(messages_per_s=1e6, message_burst=1_000_000, max_errors=1_000_000)
    try:
        async with hub_server(services, config) as srv:
            watcher = await WsClient.open(srv.base_url, alice.token)
            await watcher.subscribe(project_id)
            model = Model()
            model.apply(await watcher.expect(protocol.Snapshot))
            changes = 60

            async def write() -> None:
                for i in range(changes):
                    await add_node(store, project_id, x=i)
                    await asyncio.sleep(0.02)

            writer = asyncio.create_task(write())
            answers = await fuzz(srv.base_url, alice.token, cases)
            await writer
            await follow(watcher, model, changes)
            assert model.gaps == [] and model.duplicates == []
            assert model.applied == list(range(1, changes + 1))
            # the server is whole: it serves HTTP and a new, well-behaved connection
            async with httpx.AsyncClient(base_url=srv.base_url) as http:
                assert (await http.get("/healthz")).status_code == 200
            fresh = await WsClient.open(srv.base_url, alice.token)
            await fresh.send({"type": "ping"})
            await fresh.expect(protocol.Pong)
            for c in (fresh, watcher):
                await c.close()
    finally:
        for logger in loggers:
            logger.removeHandler(errors)
    unexpected = [r.getMessage() for r in errors.records if r.getMessage() != UVICORN_UTF8]
    assert unexpected == []
    closes = sum(1 for a in answers.values() if isinstance(a, int))
    assert closes >= 6 and len(answers) == len(cases)


async def fuzz(
    base_url: str, token: str, cases: list[Case]
) -> dict[str, protocol.ServerMessage | int]:
    """Send each case on one connection (reopened after a close) and check its answer."""
    known_errors = {code.value for code in ErrorCode}
    answers: dict[str, protocol.ServerMessage | int] = {}
    client: WsClient | None = None
    for case in cases:
        if client is None:
            client = await WsClient.open(base_url, token, max_size=None)
        if isinstance(case.payload, bytes):
            await client.ws.send(case.payload, text=case.as_text)
        else:
            await client.ws.send(case.payload)
        got = await answer(client)
        answers[case.name] = got
        if isinstance(got, int):
            assert got in DOCUMENTED_CLOSES, f"{case.name}: closed with {got}"
            assert case.error is None, f"{case.name}: closed with {got}, wanted {case.error}"
            client = None
            continue
        assert case.close is None, f"{case.name}: got {got!r}, wanted close {case.close}"
        if isinstance(got, protocol.Error):
            assert got.code in known_errors, f"{case.name}: {got!r}"
            if case.error is not None:
                assert got.code == case.error, f"{case.name}: {got!r}"
        else:
            # a random frame that happens to be valid gets its plain answer
            assert case.error is None, f"{case.name}: got {got!r}, wanted {case.error}"
            assert isinstance(got, protocol.Pong | protocol.Unsubscribed), f"{case.name}: {got!r}"
    if client is not None:
        await client.send({"type": "ping"})
        assert isinstance(await answer(client), protocol.Pong)
        await client.close()
    return answers
