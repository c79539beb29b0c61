"""The hub's knobs and its one error type."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import CanvasflowError
from common.protocol.frames import MAX_MESSAGE_BYTES, ErrorCode


@dataclass(frozen=True)
class HubConfig:
    """The hub's knobs; the defaults suit production, tests shrink them."""

    #: frames a connection may have queued before it counts as a slow consumer
    send_queue_max: int = 256
    #: bytes of frames it may have queued (beyond the one in flight, however big)
    send_queue_max_bytes: int = 4 << 20
    #: a write the client has not taken in this long ends the connection (it stopped reading)
    write_timeout_s: float = 30.0
    #: how often every channel's last_seq is compared with projects.seq
    sweep_interval_s: float = 5.0
    #: how long an early event waits for the missing ones to arrive from Redis
    #: before the gap is filled from Postgres (concurrent commits often publish
    #: out of order by a millisecond or so)
    gap_grace_s: float = 0.05
    #: a resume further behind than this gets a snapshot instead of a replay
    replay_max_events: int = 1000
    #: the longest a Postgres call of the hub may take, once it runs
    db_timeout_s: float = 5.0
    #: hub reads (sessions, access, snapshots, fills) running at once; the rest queue, so
    #: a connect storm waits its turn instead of timing out on the pool (reads.py). Below
    #: the pool's 10 connections: REST requests keep a few
    db_concurrency: int = 6
    #: the longest a hub read waits for its turn before the client is told `unavailable`
    db_queue_timeout_s: float = 60.0
    #: the longest the hub waits for Redis to confirm a SUBSCRIBE
    subscribe_confirm_timeout_s: float = 2.0
    #: reconnect delays to Redis: doubling from the first to the cap, with jitter
    redis_backoff_initial_s: float = 0.1
    redis_backoff_max_s: float = 5.0
    #: subscriptions one connection may hold
    max_subscriptions: int = 100
    #: client frames: a token bucket of `message_burst` refilled at `messages_per_s`
    messages_per_s: float = 20.0
    message_burst: int = 40
    #: error frames a connection may provoke before it is closed with 4400
    max_errors: int = 20
    #: the largest client frame, in bytes
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: how long a close (and the queued frames before it) may take to get out
    close_timeout_s: float = 10.0
    #: early events a channel holds while it fills a gap; more are dropped and
    #: refilled from the log later
    max_held_events: int = 10_000
    #: presence: a process's tabs count while its alive key (renewed every
    #: heartbeat) lives; a killed process's users leave within ttl + check
    presence_ttl_s: float = 6.0
    presence_heartbeat_s: float = 2.0
    #: how often the alive keys of the other processes are looked at
    presence_check_s: float = 1.0
    #: how often each project's presence is read again from Redis (heals lost messages)
    presence_refresh_s: float = 10.0
    #: a project's presence is sent (and written to Redis) at most once in this long:
    #: 50 ms is at most 20 updates a second per user, and per client
    presence_flush_s: float = 0.05
    #: presence frames from one connection: their own token bucket, apart from the
    #: other frames', so a cursor never eats the budget a subscribe needs; over it,
    #: frames are dropped (the next one carries the newer state anyway)
    presence_per_s: float = 30.0
    presence_burst: int = 60
    #: an abandoned project's presence hash expires after this long without a writer
    presence_hash_ttl_s: float = 60.0


class HubError(CanvasflowError):
    """A subscription cannot be served; becomes an `error` frame for its project."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code: ErrorCode = code
