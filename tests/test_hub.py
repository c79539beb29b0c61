"""The hub's routing and ordering rules, without sockets.

The first half drives the plain classes (Sequencer, Outbox, Subscription,
Peer, TokenBucket) by hand. The second half runs a real Hub against the test
run's Postgres and Redis, with Peers whose Outboxes the test reads instead of
websockets, and publishes events out of order, twice, or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from common import metrics, protocol
from common.keys import project_channel
from common.protocol import CloseCode
from common.protocol.events import AnyEvent, NodeDeleted, event_of
from db import users as user_q
from db.changes import Store
from server.present import Presenter
from server.realtime import Hub, HubConfig
from server.realtime.endpoint import TokenBucket
from server.realtime.framing import payload_of
from server.realtime.ordering import Sequencer
from server.realtime.outbox import Outbox
from server.realtime.subscription import Peer, Subscription
from tasks.storage.auto import make_storage
from tests.support.services import Services, settings_for
from tests.support.waits import until
from tests.support.ws import add_node, new_project


def ev(seq: int) -> AnyEvent:
    """An event of one fixed project."""
    return event_of(UUID(int=1), seq, NodeDeleted(node_id=UUID(int=seq), connection_ids=[]))


def seqs(events: list[AnyEvent]) -> list[int]:
    """The seqs of `events`."""
    return [e.seq for e in events]


# -- Sequencer ------------------------------------------------------------------


def test_sequencer_holds_everything_until_its_baseline() -> None:
    """Before start() nothing is released; start releases only what follows the baseline."""
    s = Sequencer()
    assert s.push(ev(3)) == [] and s.push(ev(5)) == [] and s.push(ev(6)) == []
    assert s.missing() is None
    assert seqs(s.start(4)) == [5, 6]
    assert s.last_seq == 6 and s.held == {}


def test_sequencer_reorders_and_drops_duplicates() -> None:
    """Early events wait for the missing ones; a seq at or below last_seq is dropped."""
    s = Sequencer()
    s.start(0)
    assert seqs(s.push(ev(1))) == [1]
    assert s.push(ev(3)) == []
    assert s.missing() == (1, 2)
    assert s.push(ev(1)) == []
    assert seqs(s.push(ev(2))) == [2, 3]
    assert s.push(ev(3)) == [] and s.push(ev(2)) == []
    assert s.missing() is None


def test_sequencer_names_the_gap_up_to_the_first_held_event() -> None:
    """missing() spans from last_seq to just before the earliest held event."""
    s = Sequencer()
    s.start(10)
    s.push(ev(15))
    s.push(ev(13))
    assert s.missing() == (10, 12)
    assert seqs(s.push(ev(11)) + s.push(ev(12))) == [11, 12, 13]
    assert s.missing() == (13, 14)


def test_sequencer_skip_and_drain() -> None:
    """skip_to abandons an unfillable range; drain releases everything held, gaps and all."""
    s = Sequencer()
    s.start(0)
    s.push(ev(4))
    s.push(ev(7))
    assert seqs(s.skip_to(3)) == [4]
    assert s.last_seq == 4 and s.missing() == (4, 6)
    assert seqs(s.drain()) == [7]
    assert s.last_seq == 7 and s.held == {}


def test_sequencer_caps_what_it_holds() -> None:
    """Beyond max_held early events are dropped (the log still has them)."""
    s = Sequencer(max_held=2)
    s.start(0)
    s.push(ev(3))
    s.push(ev(4))
    s.push(ev(5))
    assert sorted(s.held) == [3, 4]
    assert seqs(s.push(ev(1)) + s.push(ev(2))) == [1, 2, 3, 4]


# -- Outbox, Subscription, Peer, TokenBucket ------------------------------------


def test_outbox_fails_with_slow_consumer_when_full() -> None:
    """A full outbox closes with 4008, drops what it held and refuses more."""
    box = Outbox(3)
    assert all(box.offer(f"f{i}".encode()) for i in range(3))
    assert not box.offer(b"f3")
    assert box.close_code == CloseCode.SLOW_CONSUMER and box.failed.is_set()
    assert box.take() is None and box.done
    assert not box.offer(b"f4")


def test_outbox_drops_progress_ticks_when_half_full() -> None:
    """Droppable frames are dropped at half the capacity; the others still fit."""
    box = Outbox(4)
    assert box.offer(b"a", droppable=True) and box.offer(b"b", droppable=True)
    assert not box.offer(b"c", droppable=True)
    assert box.dropped == 1
    assert box.offer(b"d") and box.offer(b"e")
    assert box.open
    assert [box.take() for _ in range(4)] == [b"a", b"b", b"d", b"e"]


async def test_outbox_finish_drains_before_closing() -> None:
    """finish() lets the queued frames out, then next() ends; fail() ends at once."""
    box = Outbox(10)
    box.offer(b"a")
    box.offer(b"b")
    box.finish(CloseCode.TOO_MANY_ERRORS, "too many errors")
    assert not box.offer(b"c")
    assert [await box.next(), await box.next(), await box.next()] == [b"a", b"b", None]
    other = Outbox(10)
    other.offer(b"a")
    other.fail(CloseCode.GOING_AWAY, "bye")
    assert await other.next() is None and other.close_code == 1001


async def test_outbox_next_waits_for_a_frame() -> None:
    """The writer's next() sleeps until a frame is offered."""
    box = Outbox(10)
    waiter = asyncio.create_task(box.next())
    await until(lambda: box._wake is not None, "the writer to wait on its wake-up", interval_s=0)
    assert not waiter.done()
    box.offer(b"x")
    assert await asyncio.wait_for(waiter, 1) == b"x"


def test_subscription_buffers_until_live_then_filters_by_seq() -> None:
    """While catching up events are buffered; go_live sends only those after the snapshot."""
    peer = Peer(uuid4(), Outbox(10))
    sub = Subscription(peer, UUID(int=1))
    for seq in (4, 5, 6):
        assert sub.deliver(seq, f"e{seq}".encode())
    assert list(peer.outbox.frames) == []
    sub.seq = 5  # the snapshot was at 5
    assert sub.go_live()
    assert list(peer.outbox.frames) == [b"e6"]
    assert sub.deliver(6, b"e6") and sub.deliver(7, b"e7")
    assert list(peer.outbox.frames) == [b"e6", b"e7"]
    assert not sub.deliver(9, b"e9"), "a gap is reported, not sent"
    assert list(peer.outbox.frames) == [b"e6", b"e7"]


def test_subscription_reports_a_gap_in_its_buffer() -> None:
    """go_live refuses to jump over a seq its buffer lacks."""
    sub = Subscription(Peer(uuid4(), Outbox(10)), UUID(int=1))
    sub.deliver(7, b"e7")
    sub.seq = 5
    assert not sub.go_live()


def test_peer_closes_after_too_many_errors() -> None:
    """Each error frame counts; the max_errors-th closes with 4400 after the queued frames."""
    peer = Peer(uuid4(), Outbox(100), max_errors=3)
    for _ in range(2):
        peer.client_error(protocol.ErrorCode.MALFORMED_JSON, "bad")
    assert peer.outbox.open
    peer.client_error(protocol.ErrorCode.UNAVAILABLE, "later", count=False)
    assert peer.outbox.open
    peer.client_error(protocol.ErrorCode.MALFORMED_JSON, "bad")
    assert peer.outbox.close_code == CloseCode.TOO_MANY_ERRORS and peer.outbox.draining
    frames = [protocol.decode_server(payload_of(f)) for f in peer.outbox.frames]
    assert [f.code for f in frames if isinstance(f, protocol.Error)] == [
        "malformed_json",
        "malformed_json",
        "unavailable",
        "malformed_json",
    ]


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    """A bucket of 3 at 2/s: three at once, then one per half second."""
    bucket = TokenBucket(2, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


# -- a real Hub, read through its Outboxes ----------------------------------------


class CapturingRedis:
    """Stands in for the publisher's Redis client: keeps payloads so the test publishes them."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    async def publish(self, channel: str, payload: bytes) -> int:
        """Keep instead of publishing."""
        self.payloads.append(payload)
        return 0


@asynccontextmanager
async def started_hub(services: Services, store: Store, **config: Any) -> AsyncIterator[Hub]:
    """A started Hub of this test run, its pub/sub connection up."""
    settings = settings_for(services)
    presenter = Presenter(make_storage(settings), 3600)
    h = Hub(store, presenter, services.redis_url, HubConfig(**config))
    await h.start()
    await asyncio.wait_for(h.redis_ready.wait(), 10)
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def hub(services: Services, store: Store) -> AsyncIterator[Hub]:
    """A started Hub with a quick sweep and a generous gap grace."""
    async with started_hub(
        services, store, sweep_interval_s=0.3, gap_grace_s=0.3, send_queue_max=8
    ) as h:
        yield h


async def frames_of(peer: Peer, n: int, timeout_s: float = 10) -> list[protocol.ServerMessage]:
    """The next `n` frames queued for `peer`, decoded."""
    out = []
    for _ in range(n):
        frame = await asyncio.wait_for(peer.outbox.next(), timeout_s)
        assert frame is not None
        out.append(protocol.decode_server(payload_of(frame)))
    return out


async def subscribed_peer(hub: Hub, user_id: UUID, project_id: UUID) -> Peer:
    """A Peer subscribed to `project_id`, its snapshot read off."""
    peer = Peer(user_id, Outbox(hub.config.send_queue_max))
    hub.add_peer(peer)
    hub.subscribe(peer, project_id, None)
    (snap,) = await frames_of(peer, 1)
    assert isinstance(snap, protocol.Snapshot)
    return peer


async def owner_and_project(store: Store) -> tuple[UUID, UUID]:
    """A user and a project of theirs."""
    user = await user_q.create_user(store.db, f"{uuid4().hex}@example.com", "x")
    return user.id, await new_project(store, user.id)


async def committed_unpublished(store: Store, project_id: UUID, n: int) -> list[bytes]:
    """Commit `n` changes whose publishes the test holds back; their payloads in seq order."""
    capture = CapturingRedis()
    quiet = Store(db=store.db, redis=capture, namespace=store.namespace)  # type: ignore[arg-type]
    for i in range(n):
        await add_node(quiet, project_id, x=i)
    return capture.payloads


def event_seqs(frames: list[protocol.ServerMessage]) -> list[int]:
    """Seqs of the event frames among `frames`."""
    return [f.seq for f in frames if isinstance(f, protocol.Event)]


async def test_hub_reorders_events_published_out_of_order(services: Services, store: Store) -> None:
    """Events published 3, 1, 2 are delivered 1, 2, 3 without reading the log."""
    # no sweep during the test: it would read the log for the held-back publishes
    async with started_hub(services, store, sweep_interval_s=600, gap_grace_s=2) as hub:
        user_id, project_id = await owner_and_project(store)
        peer = await subscribed_peer(hub, user_id, project_id)
        payloads = await committed_unpublished(store, project_id, 3)
        fills_before = metrics.WS_GAP_FILLS._value.get()
        channel = project_channel(store.namespace, project_id)
        for i in (2, 0, 1):
            await store.redis.publish(channel, payloads[i])
        assert event_seqs(await frames_of(peer, 3)) == [1, 2, 3]
        assert metrics.WS_GAP_FILLS._value.get() == fills_before


async def test_hub_fills_a_lost_publish_from_the_log(hub: Hub, store: Store) -> None:
    """A publish that never comes is read from the events table once the grace is over."""
    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    payloads = await committed_unpublished(store, project_id, 3)
    fills_before = metrics.WS_GAP_FILLS._value.get()
    channel = project_channel(store.namespace, project_id)
    await store.redis.publish(channel, payloads[0])
    await store.redis.publish(channel, payloads[2])  # seq 2 is lost
    frames = await frames_of(peer, 3)
    assert event_seqs(frames) == [1, 2, 3]
    assert isinstance(frames[1], protocol.Event)
    assert isinstance(frames[1].data, protocol.NodeCreated) and frames[1].data.node.x == 1
    assert metrics.WS_GAP_FILLS._value.get() > fills_before, "the log was read"


async def test_hub_sweep_recovers_a_lost_last_publish(hub: Hub, store: Store) -> None:
    """With nothing after it to reveal the gap, the periodic sweep still delivers it."""
    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    await committed_unpublished(store, project_id, 2)  # both publishes lost
    assert event_seqs(await frames_of(peer, 2, timeout_s=5)) == [1, 2]


async def test_hub_drops_duplicate_publishes(hub: Hub, store: Store) -> None:
    """The same event published twice reaches a subscriber once."""
    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    payloads = await committed_unpublished(store, project_id, 3)
    channel = project_channel(store.namespace, project_id)
    for i in (0, 0, 1, 0, 1, 2):
        await store.redis.publish(channel, payloads[i])
    # the channel handles its inbox in order: seq 3 right after 2 means no copy slipped in
    assert event_seqs(await frames_of(peer, 3)) == [1, 2, 3]


async def test_an_idle_channel_holds_no_task_and_wakes_for_the_next_event(
    hub: Hub, store: Store
) -> None:
    """Between events a channel keeps no worker task and no inbox; each event starts one that
    delivers it in order and ends, and a gap keeps it alive until the log fills it."""
    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    channel = hub.channels[project_id]

    async def idle() -> bool:
        return channel.worker is None and channel.inbox is None

    await until(idle, "the channel idle after its baseline")
    for seq in (1, 2, 3):
        await add_node(store, project_id, x=seq)
        assert event_seqs(await frames_of(peer, 1)) == [seq]
        await until(idle, f"the channel idle after seq {seq}")
    # a lost publish: the worker stays up through the grace and fills it from the log
    payloads = await committed_unpublished(store, project_id, 2)
    await store.redis.publish(project_channel(store.namespace, project_id), payloads[1])
    assert event_seqs(await frames_of(peer, 2)) == [4, 5]
    await until(idle, "the channel idle after the fill")


async def test_hub_encodes_each_event_once_for_all_subscribers(hub: Hub, store: Store) -> None:
    """Every subscriber's outbox holds the very same frame object for an event."""
    user_id, project_id = await owner_and_project(store)
    peers = [await subscribed_peer(hub, user_id, project_id) for _ in range(3)]
    await add_node(store, project_id)
    frames = [await asyncio.wait_for(p.outbox.next(), 5) for p in peers]
    assert frames[0] is frames[1] is frames[2]


async def test_hub_slow_peer_is_closed_and_others_get_everything(hub: Hub, store: Store) -> None:
    """A peer that never drains overflows with 4008; a reading peer gets every event."""
    user_id, project_id = await owner_and_project(store)
    slow = await subscribed_peer(hub, user_id, project_id)
    fast = await subscribed_peer(hub, user_id, project_id)
    reader = asyncio.create_task(frames_of(fast, 20))
    for i in range(20):
        await add_node(store, project_id, x=i)
    assert event_seqs(await reader) == list(range(1, 21))
    assert slow.outbox.close_code == CloseCode.SLOW_CONSUMER
    assert not slow.outbox.frames


async def test_hub_forwards_progress_ticks_without_seq(hub: Hub, store: Store) -> None:
    """A job.progress tick goes straight to live subscribers as a job.progress frame."""
    from db.changes import publish_progress

    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    job_id = uuid4()
    await publish_progress(store, project_id, job_id, 0.4567)
    (tick,) = await frames_of(peer, 1)
    assert tick == protocol.JobProgress(project_id=project_id, job_id=job_id, progress=0.457)


async def test_hub_unsubscribes_redis_when_the_last_subscriber_leaves(
    hub: Hub, store: Store
) -> None:
    """The Redis channel has a subscriber while someone follows the project, none after."""
    user_id, project_id = await owner_and_project(store)
    channel = project_channel(store.namespace, project_id)
    peers = [await subscribed_peer(hub, user_id, project_id) for _ in range(2)]

    async def redis_subscribers() -> int:
        counts = await store.redis.pubsub_numsub(channel)
        return int(counts[0][1])

    assert await redis_subscribers() == 1, "one Redis subscription for both peers"
    hub.remove_peer(peers[0])
    assert project_id in hub.channels
    hub.remove_peer(peers[1])
    assert project_id not in hub.channels
    for _ in range(100):
        if await redis_subscribers() == 0:
            break
        await asyncio.sleep(0.02)
    assert await redis_subscribers() == 0


async def test_hub_resubscribe_replaces_the_subscription(hub: Hub, store: Store) -> None:
    """Subscribing again with since restarts the stream from since, without a snapshot."""
    user_id, project_id = await owner_and_project(store)
    peer = await subscribed_peer(hub, user_id, project_id)
    for i in range(3):
        await add_node(store, project_id, x=i)
    assert event_seqs(await frames_of(peer, 3)) == [1, 2, 3]
    hub.subscribe(peer, project_id, 1)
    frames = await frames_of(peer, 3)
    assert frames[0] == protocol.Subscribed(project_id=project_id, seq=1)
    assert event_seqs(frames) == [2, 3]
    assert len(peer.subscriptions) == 1


def test_snapshot_frame_shape_round_trips() -> None:
    """A snapshot frame decodes back to the same struct (the encoder keeps every member)."""
    now = datetime.now(UTC)
    node = protocol.Node(
        id=uuid4(),
        project_id=uuid4(),
        type=protocol.NodeType.PROMPT,
        x=1.5,
        y=-2,
        data={"prompt": "a fox"},
        status=protocol.NodeStatus.IDLE,
        error_message=None,
        created_at=now,
        updated_at=now,
        version=3,
    )
    snap = protocol.Snapshot(
        project_id=node.project_id, seq=3, nodes=[node], connections=[], jobs=[]
    )
    assert protocol.decode_server(protocol.encode(snap)) == snap
    assert msgspec.json.decode(protocol.encode(snap))["type"] == "snapshot"
