"""Catching a subscription up: the state it is sent (snapshot, `subscribed`, or a replay
from the log), then the buffered events after it, then live.

The hub runs this after the subscription joined its channel (hub.py,
`Hub._subscribe`), and again when a subscription falls out of step (`resync`):
the channel buffers for it meanwhile, so nothing falls between the state and
the stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from uuid import UUID

from common import metrics, protocol
from common.protocol import frames
from common.protocol.events import AnyEvent
from common.protocol.frames import ErrorCode
from db.events import events_after, read_snapshot
from db.projects import current_seq
from server.realtime.channel import Channel
from server.realtime.config import HubError
from server.realtime.framing import encode_frame
from server.realtime.membership import readmit, role_changes
from server.realtime.subscription import Subscription

if TYPE_CHECKING:
    from server.realtime.hub import Hub

log = logging.getLogger(__name__)


async def catch_up(hub: Hub, ch: Channel, sub: Subscription, since: int | None) -> None:
    """Send the client its state (snapshot, `subscribed`, or a replay), then go live."""
    peer = sub.peer
    sent = False
    if since is not None:
        # The channel's position will do as the state's seq: every seq up to it is
        # committed and logged, and every later one reaches this subscription through
        # the channel. It saves a query per resume, a storm's worth after a restart.
        seq = ch.sequencer.last_seq
        if seq is None or since > seq:
            # the client may be further along than this process (it resumes from
            # another one): Postgres decides
            seq = await hub.db(current_seq(hub.store.db, ch.project_id))
        if seq is None:
            raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
        if since == seq:
            # 3a. the client is current: no snapshot, just the confirmation
            peer.send(frames.Subscribed(project_id=ch.project_id, seq=seq))
            sub.seq, sent = seq, True
        elif sub.added_seq <= since < seq:
            # 3b. the client missed a few: replay them from the log if it reaches back
            #     (never from before the user joined: they were not there for those)
            events = await replay(hub, ch.project_id, since, seq)
            if events is not None:
                peer.send(frames.Subscribed(project_id=ch.project_id, seq=since))
                sub.seq, sent = since, True
                for event in events:
                    frame = await ch.encode_event(event)
                    if not sub.send(event.seq, frame, role_changes(event.data)):
                        break  # the replay removed the user: the rest is not theirs
                if sub.revoked:
                    hub.role_changed(sub)
                    return
        # 3c. since > seq (the client is ahead, e.g. after a restore): a snapshot
    if not sent:
        snapshot = await snapshot_frame(hub, ch.project_id)
        if snapshot is None:
            raise HubError(ErrorCode.PROJECT_NOT_FOUND, "No project with that id.")
        seq, frame, members = snapshot
        # the snapshot's own members decide: a removal after the access check shows here
        readmit(sub, members)
        peer.outbox.offer(frame)
        metrics.WS_FRAMES_DELIVERED.labels("snapshot").inc()
        sub.seq = seq
    # 4. Then the buffered events with a greater seq, and live from here on.
    if not sub.go_live():
        resync(hub, ch, sub, "gap")
    hub.role_changed(sub)


async def replay(hub: Hub, project_id: UUID, since: int, seq: int) -> list[AnyEvent] | None:
    """The logged events after `since` up to `seq`, or None unless all of them are there."""
    if seq - since > hub.config.replay_max_events:
        return None
    events = await hub.db(events_after(hub.store.db, project_id, since, seq))
    if [e.seq for e in events] != list(range(since + 1, seq + 1)):
        return None  # pruned from the log: the client gets a snapshot
    return events


async def snapshot_frame(
    hub: Hub, project_id: UUID
) -> tuple[int, bytes, list[protocol.Member]] | None:
    """The project's snapshot, URLs signed now, framed, and its members; None if gone."""
    # every caller joined the channel already: the next read (not one under way) serves
    # them all, presented and framed once
    return await hub.flights.run(
        ("snapshot", project_id), lambda: _read_snapshot_frame(hub, project_id), join_started=False
    )


async def _read_snapshot_frame(
    hub: Hub, project_id: UUID
) -> tuple[int, bytes, list[protocol.Member]] | None:
    snap = await hub.db(read_snapshot(hub.store.db, project_id))
    if snap is None:
        return None
    return snap.seq, encode_frame(await hub.presenter.snapshot(snap)), snap.members


def resync(hub: Hub, ch: Channel, sub: Subscription, reason: str) -> None:
    """Bring one subscription back in step: buffer again and catch up from its seq."""
    if sub.ended or not sub.live:
        return  # a catch-up is running already and its buffer holds what came
    metrics.WS_RESYNCS.labels(reason).inc()
    sub.live = False
    sub.buffer = []

    async def run() -> None:
        try:
            await catch_up(hub, ch, sub, sub.seq)
        except asyncio.CancelledError:
            raise
        except HubError as exc:
            hub.end(sub)
            sub.peer.client_error(exc.code, exc.message, sub.project_id, count=False)
        except Exception as exc:
            log.warning("resync of %s failed: %r", sub.project_id, exc)
            hub.end(sub)
            sub.peer.client_error(
                ErrorCode.UNAVAILABLE,
                "The server lost track of this project; subscribe again with since.",
                sub.project_id,
                count=False,
            )

    sub.task = asyncio.create_task(run())
