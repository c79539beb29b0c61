"""The safety net: every few seconds, catch channels up with Postgres and end dead sessions.

Redis may lose a publish (the last event of a burst has no later event to
reveal the gap), so each sweep compares every started channel's position
with `projects.seq` in ONE query and fills what is behind from the log. The
same pass closes, with 4401, connections whose session was logged out or has
expired: polled rather than pushed, one query covers every web process, log
outs and expiry alike, and needs no Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from common.protocol.frames import CloseCode
from db.projects import seqs_of
from db.sessions import live_sessions
from server.realtime.channel import FillTo, Gone

if TYPE_CHECKING:
    from server.realtime.hub import Hub

log = logging.getLogger(__name__)


async def sweep_loop(hub: Hub) -> None:
    """Every sweep_interval_s: sweep the channels, then check the sessions."""
    while True:
        await asyncio.sleep(hub.config.sweep_interval_s)
        try:
            await sweep_channels(hub)
        except Exception as exc:
            log.warning("hub sweep failed: %r", exc)
        try:
            await check_sessions(hub)
        except Exception as exc:
            log.warning("hub session check failed: %r", exc)


async def sweep_channels(hub: Hub) -> None:
    """One query for every started channel; a channel behind Postgres fills from the log."""
    started = {pid: ch for pid, ch in hub.channels.items() if ch.started.is_set()}
    if not started:
        return
    seqs = await hub.db(seqs_of(hub.store.db, list(started)))
    for project_id, ch in started.items():
        if ch.closed:
            continue
        seq = seqs.get(project_id)
        last = ch.sequencer.last_seq
        if seq is None:
            ch.push(Gone())
        elif last is not None and seq > last:
            ch.push(FillTo(seq))


async def check_sessions(hub: Hub) -> None:
    """Close with 4401 every connection whose session was logged out or has expired."""
    sessions = {p.session for p in hub.peers if p.session is not None}
    if not sessions:
        return
    live = await hub.db(live_sessions(hub.store.db, sessions))
    for peer in list(hub.peers):
        # only sessions the query asked about: a peer that connected during the
        # await is not in `live` either, and its session is fine (it just authed)
        if peer.session in sessions and peer.session not in live:
            peer.outbox.fail(CloseCode.UNAUTHENTICATED, "session ended: log in again")
