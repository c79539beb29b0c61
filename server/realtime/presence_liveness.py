"""Presence's liveness: a heartbeat per process, and the check that drops dead processes' tabs.

Every `presence_heartbeat_s` a web process renews its alive key (TTL
`presence_ttl_s`); after a lapse — Redis restarted empty, or the process
stalled past the TTL — it writes all its tabs again. Every
`presence_check_s` it looks up, in one MGET, the alive keys of the processes
whose tabs it shows, and drops the tabs of those whose key is gone: that is
how the users of a SIGKILLed process leave everyone's presence. Every
`presence_refresh_s` it also reads each room's hash again (a lost message
heals). The same shape as sweep.py for the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from server.realtime.presence import PresenceHub

log = logging.getLogger(__name__)


async def heartbeat_loop(presence: PresenceHub) -> None:
    """Renew the alive key; after a lapse (a Redis restart, a stall) write our tabs again."""
    beaten = False
    while True:
        try:
            existed = await asyncio.wait_for(presence.store.beat(), presence.config.db_timeout_s)
            if beaten and not existed:
                for live in presence.rooms.values():
                    for sub, key in live.subs.items():
                        tab = presence.local.get(sub)
                        if tab is not None and tab.joined:
                            live.unsent.setdefault(key, tab.state)
            beaten = True
            presence.alive.set()
            rooms = [lr for lr in presence.rooms.values() if lr.subs]
            await presence.store.touch(lr.room.project_id for lr in rooms)
            for live in list(presence.rooms.values()):
                if live.unsent:
                    presence.schedule(live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("presence heartbeat failed: %r", exc)
        await asyncio.sleep(presence.config.presence_heartbeat_s)


async def check_loop(presence: PresenceHub) -> None:
    """Drop the tabs of processes whose alive key expired; now and then read every room."""
    loop = asyncio.get_running_loop()
    next_refresh = loop.time() + presence.config.presence_refresh_s
    while True:
        await asyncio.sleep(presence.config.presence_check_s)
        try:
            await expire_dead(presence)
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + presence.config.presence_refresh_s
                for live in list(presence.rooms.values()):
                    await presence.refresh(live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("presence check failed: %r", exc)


async def expire_dead(presence: PresenceHub) -> None:
    """One liveness pass: the tabs of every process whose alive key is gone leave."""
    procs = set().union(*(lr.room.procs() for lr in presence.rooms.values())) - {presence.proc}
    dead = await asyncio.wait_for(presence.store.dead(procs), presence.config.db_timeout_s)
    if not dead:
        return
    for live in list(presence.rooms.values()):
        gone = live.room.drop_procs(dead)
        if gone:
            presence.schedule(live)
            presence.spawn(_forget(presence, live.room.project_id, gone))


async def _forget(presence: PresenceHub, project_id: UUID, keys: list[str]) -> None:
    with contextlib.suppress(Exception):
        await presence.store.forget(project_id, keys)
