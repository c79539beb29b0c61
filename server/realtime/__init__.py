"""The realtime path of the web process: project events to websockets, in order.

    bus.py           one Redis pub/sub connection per process (reconnects, resubscribes)
    channel.py       routing: one project's stream, gap fills from the log, fan-out
    ordering.py      the Sequencer: seq order out of whatever order Redis brings
    subscription.py  a connection (Peer) following projects (Subscription): buffer, then live
    outbox.py        backpressure: a connection's bounded queue of frames
    hub.py           the Hub: subscribe-before-snapshot, channels opened and closed
    sweep.py         the safety net: catch channels up with Postgres, end dead sessions
    endpoint.py      delivery: GET /ws, which checks the handshake and only moves frames
    shutdown.py      1001 to every client before the server stops
    config.py        HubConfig and HubError

Everything but bus.py, hub.py, sweep.py and endpoint.py is plain code tested
without sockets (tests/test_hub.py).
"""

from server.realtime.config import HubConfig, HubError
from server.realtime.hub import Hub

__all__ = ["Hub", "HubConfig", "HubError"]
