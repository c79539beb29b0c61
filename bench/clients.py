"""Websocket load clients: many asyncio `websockets` connections per process, several
processes per pool, driven by the bench over a pipe.

One clock: every timestamp is `time.monotonic()`, which on Linux is CLOCK_MONOTONIC and
the same in every process of the machine, so a stamp put in an event by one process can be
subtracted from a receive time read in another.

A client keeps its project by the shared client rules (common/protocol/mirror.py: seq,
gaps, resubscribe with `since`, retries, backoff, final closes) and records for each event
it applies its latency (when the event carries a stamp `t`); `job.progress` ticks are
recorded as (project, progress, receive time) so the bench can join them with the
publisher's send times. With a backoff the client reconnects as the documented client does
and resubscribes with `since`. Clients of the bare server (no subscription, no seq) only
count and time the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import random
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

import msgspec

from bench.child import command_queue
from common import protocol
from common.protocol import CloseCode
from common.protocol.mirror import Mirror, Step, Stop, backoff_s

#: every wait of a client process ends by this, whatever the bench asks
HARD_LIMIT_S = 900.0
#: close codes: too slow, resume with `since`
SLOW_CONSUMER = CloseCode.SLOW_CONSUMER


@dataclass(frozen=True)
class Backoff:
    """The reconnect schedule of the shared client rules: full jitter under a doubling cap.

    The defaults are docs/protocol.md's: 0.5 s doubling up to 4 s."""

    base_s: float = 0.5
    cap_s: float = 4.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before reconnect attempt `attempt` (0-based)."""
        return backoff_s(attempt, self.base_s, self.cap_s, rng.random)


@dataclass(frozen=True)
class ClientSpec:
    """What one client process runs: the server, its seats, and how to behave."""

    url: str
    #: (project_id, token) per client; project_id "" for the bare server (no subscribe)
    seats: list[tuple[str, str]]
    subscribe: bool = True
    backoff: Backoff | None = None
    connect_concurrency: int = 100
    connect_timeout_s: float = 60.0
    seed: int = 0


@dataclass
class ClientState:
    """One client's view of its project: the shared mirror, and what the bench times."""

    project_id: str
    token: str
    mirror: Mirror = field(default_factory=Mirror)
    subscribed: bool = False
    ever_subscribed: bool = False
    received: int = 0
    disconnected_at: float | None = None
    resubscribed_at: float | None = None
    #: when the connection attempt that led to the last (re)subscription started
    attempt_started_at: float | None = None
    resubscribed_attempt_at: float | None = None
    reconnects: int = 0

    @property
    def last_seq(self) -> int | None:
        """The seq of the state the client holds."""
        project = self.mirror.projects.get(UUID(self.project_id)) if self.project_id else None
        return None if project is None else project.seq


@dataclass
class Records:
    """What a client process measured since the last collect."""

    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    progress_project: list[str] = field(default_factory=list)
    progress_value: array[float] = field(default_factory=lambda: array("d"))
    progress_t: array[float] = field(default_factory=lambda: array("d"))
    #: one event frame as received, so the bare server can send the very same shape
    sample_frame: str | None = None
    first_recv: float = math.inf
    last_recv: float = -math.inf
    events: int = 0
    event_bytes: int = 0
    gaps: int = 0
    duplicates: int = 0
    resyncs: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        """Count one error by kind (kept small: kinds, not messages)."""
        self.errors[what] = self.errors.get(what, 0) + 1


_decode = msgspec.json.decode


def stamp_of(data: object) -> float | None:
    """The bench's stamp in an event's data: `data.t`, or `data.node.data.t` (node update)."""
    if isinstance(data, protocol.NodeCreated | protocol.NodeUpdated):
        t = data.node.data.get("t")
    elif isinstance(data, msgspec.Raw):
        raw = _decode(data)
        t = raw.get("t") if isinstance(raw, dict) else None
    else:
        t = None
    return float(t) if isinstance(t, int | float) else None


class ClientProcess:
    """The clients of one process and the commands the bench sends them."""

    def __init__(self, spec: ClientSpec) -> None:
        self.spec = spec
        self.states = [ClientState(p, t) for p, t in spec.seats]
        self.records = Records()
        self.rng = random.Random(spec.seed)
        self.stopping = False
        #: delayed resubscribes in flight (kept so they are not garbage-collected)
        self.later: set[asyncio.Task[None]] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.sockets: dict[int, Any] = {}
        self.connect_gate = asyncio.Semaphore(spec.connect_concurrency)

    def handle(self, state: ClientState, raw: str | bytes) -> Step:
        """Record one frame and apply it by the shared rules; the Step says what to send."""
        now = time.monotonic()
        rec = self.records
        state.received += 1
        message = protocol.decode_server(raw)
        if not self.spec.subscribe:
            # the bare server: no subscription, no seq; every event frame counts
            if isinstance(message, protocol.Event):
                self._record_event(message, raw, now)
            return Step()
        step = state.mirror.receive(message)
        if isinstance(message, protocol.Event):
            project = state.mirror.projects[UUID(state.project_id)]
            if step.changed is not None:
                self._record_event(message, raw, now)
            elif project.duplicates and project.duplicates[-1] == message.seq:
                rec.duplicates += 1
            if step.send:
                rec.gaps += 1
        elif isinstance(message, protocol.JobProgress):
            rec.first_recv = min(rec.first_recv, now)
            rec.last_recv = now
            rec.progress_project.append(str(message.project_id))
            rec.progress_value.append(message.progress)
            rec.progress_t.append(now)
        elif isinstance(message, protocol.Snapshot | protocol.Subscribed):
            if not state.subscribed:
                state.subscribed = True
                if state.ever_subscribed and state.resubscribed_at is None:
                    state.resubscribed_at = now
                    state.resubscribed_attempt_at = state.attempt_started_at
                state.ever_subscribed = True
        elif isinstance(message, protocol.Error):
            rec.error(f"frame:{message.code}")
        return step

    def _record_event(self, event: protocol.AnyEvent, raw: str | bytes, now: float) -> None:
        rec = self.records
        rec.events += 1
        rec.event_bytes += len(raw)
        if rec.sample_frame is None:
            rec.sample_frame = raw if isinstance(raw, str) else raw.decode()
        rec.first_recv = min(rec.first_recv, now)
        rec.last_recv = now
        t = stamp_of(event.data)
        if t is not None:
            rec.latencies_s.append(now - t)

    async def send_later(self, ws: Any, frame: protocol.ClientMessage, delay_s: float) -> None:
        """Send a frame after `delay_s` (a subscription the server could not serve yet)."""
        await asyncio.sleep(delay_s)
        with contextlib.suppress(Exception):
            await ws.send(protocol.encode(frame))

    async def run_client(self, index: int) -> None:
        """Connect, subscribe, read until told to stop; reconnect with the backoff if set."""
        import websockets
        from websockets.asyncio.client import connect

        state = self.states[index]
        spec = self.spec
        attempt = 0
        deadline = time.monotonic() + HARD_LIMIT_S
        headers = {"Authorization": f"Bearer {state.token}"} if state.token else {}
        while not self.stopping and time.monotonic() < deadline:
            try:
                state.attempt_started_at = time.monotonic()
                async with self.connect_gate:
                    ws = await connect(
                        spec.url,
                        additional_headers=headers,
                        # browsers neither compress small frames here nor ping
                        compression=None,
                        ping_interval=None,
                        proxy=None,
                        open_timeout=spec.connect_timeout_s,
                        max_queue=1024,
                    )
                self.sockets[index] = ws
                try:
                    if spec.subscribe:
                        first = (
                            state.mirror.resume()
                            if state.ever_subscribed
                            else state.mirror.subscribe(UUID(state.project_id))
                        )
                        for frame in first:
                            await ws.send(protocol.encode(frame))
                    else:
                        state.subscribed = state.ever_subscribed = True
                    async for raw in ws:
                        step = self.handle(state, raw)
                        for frame in step.send:
                            await ws.send(protocol.encode(frame))
                        for delay_s, frame in step.later:
                            task = asyncio.create_task(self.send_later(ws, frame, delay_s))
                            self.later.add(task)
                            task.add_done_callback(self.later.discard)
                finally:
                    self.sockets.pop(index, None)
                    await ws.close()
                close_code = ws.close_code
            except websockets.exceptions.ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd else None
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                self.records.error(type(exc).__name__)
                close_code = None
            except asyncio.CancelledError:
                return
            if self.stopping:
                return
            if close_code is not None or state.subscribed:
                self.records.error(f"closed:{close_code}")
            if close_code == SLOW_CONSUMER:
                self.records.resyncs += 1
            if spec.subscribe and isinstance(state.mirror.closed(close_code), Stop):
                return
            # the connection is gone: the client is no longer subscribed; the backoff starts
            # over only after a connection that got as far as a subscription
            if state.subscribed:
                state.subscribed = False
                state.disconnected_at = time.monotonic()
                state.resubscribed_at = None
                attempt = 0
            if spec.backoff is None:
                return
            state.reconnects += 1
            await asyncio.sleep(spec.backoff.delay(attempt, self.rng))
            attempt += 1

    def status(self) -> dict[str, Any]:
        """How many clients are subscribed now, and their resubscribe times."""
        resub = [s.resubscribed_at for s in self.states if s.resubscribed_at is not None]
        return {
            "clients": len(self.states),
            "subscribed": sum(s.subscribed for s in self.states),
            "last_resubscribed_at": max(resub) if resub else None,
            "resubscribed": len(resub),
            "events": self.records.events,
            "progress": len(self.records.progress_t),
            "errors": dict(self.records.errors),
        }

    def collect(self, clear: bool) -> dict[str, Any]:
        """Everything recorded since the last clearing collect, in picklable form."""
        rec = self.records
        out = {
            "latencies_s": rec.latencies_s.tobytes(),
            "progress_project": rec.progress_project,
            "progress_value": rec.progress_value.tobytes(),
            "progress_t": rec.progress_t.tobytes(),
            "first_recv": rec.first_recv,
            "last_recv": rec.last_recv,
            "events": rec.events,
            "event_bytes": rec.event_bytes,
            "sample_frame": rec.sample_frame,
            "gaps": rec.gaps,
            "duplicates": rec.duplicates,
            "resyncs": rec.resyncs,
            "errors": dict(rec.errors),
            "last_seq_per_client": [(s.project_id, s.last_seq) for s in self.states],
            "reconnects": sum(s.reconnects for s in self.states),
            "resubscribes": [
                (s.resubscribed_attempt_at, s.resubscribed_at)
                for s in self.states
                if s.resubscribed_at is not None and s.resubscribed_attempt_at is not None
            ],
        }
        if clear:
            self.records = Records()
        return out

    async def main(self, conn: Connection) -> None:
        """Start every client, report ready, then answer the bench's commands."""
        self.tasks = [asyncio.create_task(self.run_client(i)) for i in range(len(self.states))]
        deadline = time.monotonic() + self.spec.connect_timeout_s
        while time.monotonic() < deadline:
            if all(s.subscribed for s in self.states):
                break
            if all(t.done() for t in self.tasks):
                break
            await asyncio.sleep(0.05)
        conn.send(("ready", self.status()))
        commands = command_queue(conn)

        hard_deadline = time.monotonic() + HARD_LIMIT_S
        while time.monotonic() < hard_deadline:
            try:
                command = await asyncio.wait_for(commands.get(), 5)
            except TimeoutError:
                continue
            if command[0] == "status":
                conn.send(("status", self.status()))
            elif command[0] == "collect":
                conn.send(("collect", self.collect(bool(command[1]))))
            elif command[0] == "stop":
                break
        self.stopping = True
        for ws in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            conn.send(("stopped", None))


def client_process_main(spec: ClientSpec, conn: Connection) -> None:
    """Entry point of a client process (spawned)."""
    from bench.services import raise_open_files_limit

    raise_open_files_limit()
    try:
        import uvloop

        uvloop.run(ClientProcess(spec).main(conn))
    except ImportError:
        asyncio.run(ClientProcess(spec).main(conn))


@dataclass
class Collected:
    """The merged records of every client process of a pool."""

    latencies_s: list[float]
    progress: list[tuple[str, float, float]]
    first_recv: float
    last_recv: float
    events: int
    event_bytes: int
    sample_frame: str | None
    gaps: int
    duplicates: int
    resyncs: int
    errors: dict[str, int]
    #: (project_id, last seq seen) of every client, in no particular order
    last_seq_per_client: list[tuple[str, int | None]]
    reconnects: int
    #: (start of the successful attempt, resubscribed) per client that resubscribed
    resubscribes: list[tuple[float, float]]


class ClientPool:
    """Client processes sharing the seats; use as a context manager so they always end."""

    def __init__(
        self,
        url: str,
        seats: list[tuple[str, str]],
        processes: int,
        *,
        subscribe: bool = True,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 60.0,
        connect_concurrency: int = 100,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        processes = max(1, min(processes, len(seats)))
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(processes):
            spec = ClientSpec(
                url=url,
                seats=seats[i::processes],
                subscribe=subscribe,
                backoff=backoff,
                connect_timeout_s=connect_timeout_s,
                connect_concurrency=max(1, connect_concurrency // processes),
                seed=i,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process_main, args=(spec, child), daemon=True)
            self.conns.append(parent)
            self.procs.append(proc)
        self.connect_timeout_s = connect_timeout_s
        self.ready: dict[str, Any] = {}

    def _ask(self, command: tuple[Any, ...], expect: str, timeout_s: float) -> list[Any]:
        for conn in self.conns:
            conn.send(command)
        return [self._recv(conn, expect, timeout_s) for conn in self.conns]

    @staticmethod
    def _recv(conn: Connection, expect: str, timeout_s: float) -> Any:
        if not conn.poll(timeout_s):
            raise TimeoutError(f"client process did not answer {expect!r} in {timeout_s} s")
        kind, body = conn.recv()
        if kind != expect:
            raise RuntimeError(f"client process answered {kind!r}, expected {expect!r}")
        return body

    @property
    def pids(self) -> list[int]:
        """The client processes' ids (once started)."""
        return [p.pid for p in self.procs if p.pid is not None]

    def start(self) -> dict[str, Any]:
        """Start the processes and wait until every client subscribed (or the timeout)."""
        for proc in self.procs:
            proc.start()
        ready = [self._recv(c, "ready", self.connect_timeout_s + 30) for c in self.conns]
        self.ready = _merge_status(ready)
        if self.ready["subscribed"] == 0:
            raise RuntimeError(f"no client could subscribe: {self.ready['errors']}")
        return self.ready

    def status(self) -> dict[str, Any]:
        """Subscribed counts and resubscribe times across processes."""
        return _merge_status(self._ask(("status",), "status", 30))

    def collect(self, clear: bool = True) -> Collected:
        """Merge every process's records (and clear them when `clear`)."""
        parts = self._ask(("collect", clear), "collect", 60)
        latencies: list[float] = []
        progress: list[tuple[str, float, float]] = []
        errors: dict[str, int] = {}
        last_seq: list[tuple[str, int | None]] = []
        for p in parts:
            latencies.extend(array("d", p["latencies_s"]))
            values = array("d", p["progress_value"])
            times = array("d", p["progress_t"])
            progress.extend(zip(p["progress_project"], values, times, strict=True))
            for k, v in p["errors"].items():
                errors[k] = errors.get(k, 0) + v
            last_seq.extend(tuple(x) for x in p["last_seq_per_client"])
        return Collected(
            latencies_s=latencies,
            progress=progress,
            first_recv=min(p["first_recv"] for p in parts),
            last_recv=max(p["last_recv"] for p in parts),
            events=sum(p["events"] for p in parts),
            event_bytes=sum(p["event_bytes"] for p in parts),
            sample_frame=next((p["sample_frame"] for p in parts if p["sample_frame"]), None),
            gaps=sum(p["gaps"] for p in parts),
            duplicates=sum(p["duplicates"] for p in parts),
            resyncs=sum(p["resyncs"] for p in parts),
            errors=errors,
            last_seq_per_client=last_seq,
            reconnects=sum(p["reconnects"] for p in parts),
            resubscribes=[tuple(x) for p in parts for x in p["resubscribes"]],
        )

    def close(self) -> None:
        """Ask every process to stop; kill the ones that do not."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        deadline = time.monotonic() + 20
        for proc in self.procs:
            if proc.pid is None:
                continue
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def __enter__(self) -> ClientPool:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _merge_status(parts: list[dict[str, Any]]) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    last = [p["last_resubscribed_at"] for p in parts if p["last_resubscribed_at"] is not None]
    return {
        "clients": sum(p["clients"] for p in parts),
        "subscribed": sum(p["subscribed"] for p in parts),
        "resubscribed": sum(p["resubscribed"] for p in parts),
        "events": sum(p["events"] for p in parts),
        "progress": sum(p["progress"] for p in parts),
        "last_resubscribed_at": max(last) if last else None,
        "errors": errors,
    }


def wait_delivered(
    pool: ClientPool, key: str, expected: int, quiet_s: float = 3.0, limit_s: float = 60.0
) -> int:
    """Poll until the pool received `expected` frames of `key` ("events" or "progress"), or
    nothing new arrived for `quiet_s`, or `limit_s` passed; returns what arrived."""
    deadline = time.monotonic() + limit_s
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = int(pool.status()[key])
        if got >= expected:
            return got
        if got != last:
            last, last_change = got, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return got
        time.sleep(0.1)
    return last


def processes_for(n_clients: int) -> int:
    """Client processes for `n_clients`: one per ~2,500 sockets, two at least past 500."""
    if n_clients <= 500:
        return 1
    return max(2, math.ceil(n_clients / 2500))
