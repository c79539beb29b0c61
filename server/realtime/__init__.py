"""The realtime path of the web process: project events to websockets, in order.

    bus.py           one Redis pub/sub connection per process (reconnects, resubscribes)
    channel.py       routing: one project's stream, gap fills from the log, fan-out
    ordering.py      the Sequencer: seq order out of whatever order Redis brings
    subscription.py  a connection (Peer) following projects (Subscription): buffer, then live
    outbox.py        backpressure: a connection's bounded queue of frames
    hub.py           the Hub: subscribe-before-snapshot, channels opened and closed
    sweep.py         the safety net: catch channels up with Postgres, end dead sessions
    membership.py    what membership events do to subscriptions; who may follow a project
    presence.py      who is here: tabs joined, coalesced frames out, writes to Redis
    presence_room.py one project's presence: tabs merged per user, diffs and full lists
    presence_store.py  presence in Redis: the tabs hash, the channel, the alive keys
    presence_liveness.py  the heartbeat, and dropping the tabs of dead processes
    endpoint.py      delivery: GET /ws, which checks the handshake and only moves frames
    shutdown.py      1001 to every client before the server stops
    config.py        HubConfig and HubError

ordering.py, outbox.py, subscription.py and presence_room.py are plain code
tested without sockets (tests/test_hub.py, tests/test_presence_units.py).
"""

from server.realtime.config import HubConfig, HubError
from server.realtime.hub import Hub

__all__ = ["Hub", "HubConfig", "HubError"]
