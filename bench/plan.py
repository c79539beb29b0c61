"""How big each measurement is (full and smoke) and what every measurement is handed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import Backoff
from bench.report import Section
from bench.services import Services, WebProc


@dataclass(frozen=True)
class Sizes:
    """Every count and time budget of a run, so a run is bounded by construction."""

    broadcast_clients: tuple[int, ...] = (100, 1_000, 5_000)
    #: paced phase: seconds of events per N, at min(max_rate, frames_per_s / N) events/s
    broadcast_seconds: float = 10.0
    broadcast_max_rate: float = 20.0
    broadcast_frames_per_s: float = 20_000.0
    #: burst phase: events back to back, so that N * events ~ this many frames
    broadcast_burst_frames: int = 100_000
    broadcast_min_burst: int = 20
    #: burst phases per server (alternating durable / raw for canvasflow): CPU per
    #: delivery is reported as the range over them (the machine is shared)
    broadcast_repeats: int = 3
    #: changes one project takes back to back (publish_change and the bare writes)
    durable_changes: int = 500
    targeted_clients: int = 1_000
    targeted_tick_per_s: float = 1.0
    targeted_seconds: float = 10.0
    saturation_clients: int = 1_000
    saturation_rates: tuple[float, ...] = (5, 10, 15, 20, 30, 40, 60, 80, 120, 160)
    saturation_step_s: float = 5.0
    idle_clients: tuple[int, ...] = (1_000, 5_000, 10_000)
    #: one full server ping cycle (uvicorn pings every 20 s), so pings are in every window
    idle_window_s: float = 20.0
    idle_settle_s: float = 2.0
    #: also hold the clients on the bare websockets server (the limit of RSS per connection)
    #: and run the connect storm (all N at once, on canvasflow and the bare server); the
    #: smoke run leaves both out to fit its two minutes on a shared machine
    idle_storm: bool = True
    reconnect_clients: int = 1_000
    reconnect_projects: int = 100
    reconnect_rate: float = 20.0
    reconnect_deadline_s: float = 60.0
    #: events flow this long before the kill; the restart comes this long after it;
    #: events go on flowing this long after the restart
    reconnect_before_kill_s: float = 2.0
    reconnect_down_s: float = 1.0
    reconnect_flow_after_s: float = 15.0
    #: also run the storm with eager clients (the server's own limit)
    reconnect_eager: bool = True
    #: also run the storm with the documented backoff capped at this many seconds (0: not),
    #: to show what a longer cap would cost after an outage
    reconnect_compare_cap_s: float = 15.0
    #: connection attempts in flight at once across the client processes (browsers have
    #: no such gate; the client processes need one to stay responsive)
    reconnect_connect_concurrency: int = 100
    submit_requests: int = 3_000
    submit_concurrency: int = 32
    submit_pickups: int = 100
    submit_pickup_rate: float = 5.0
    arq_throughput_count: int = 5_000
    insert_count: int = 5_000
    connect_timeout_s: float = 120.0
    #: 7. clients on one project through one web process, then two sharing the port
    processes_clients: int = 1_000


SMOKE = Sizes(
    broadcast_clients=(20,),
    broadcast_seconds=1.0,
    broadcast_burst_frames=400,
    broadcast_min_burst=10,
    broadcast_repeats=1,
    durable_changes=20,
    targeted_clients=20,
    targeted_tick_per_s=2.0,
    targeted_seconds=1.0,
    saturation_clients=20,
    saturation_rates=(20, 40),
    saturation_step_s=1.0,
    idle_clients=(20,),
    idle_window_s=1.0,
    idle_settle_s=0.5,
    idle_storm=False,
    reconnect_clients=20,
    reconnect_projects=4,
    reconnect_rate=20.0,
    reconnect_deadline_s=20.0,
    reconnect_before_kill_s=0.5,
    reconnect_down_s=0.3,
    reconnect_flow_after_s=1.0,
    reconnect_eager=False,
    reconnect_compare_cap_s=0.0,
    submit_requests=40,
    submit_concurrency=4,
    submit_pickups=4,
    submit_pickup_rate=4.0,
    arq_throughput_count=100,
    insert_count=100,
    connect_timeout_s=20.0,
    processes_clients=20,
)


@dataclass(frozen=True)
class Targets:
    """The issue's targets on this 2-core machine (clients share it)."""

    broadcast_fraction_of_bare: float = 0.5
    #: server CPU per delivery at 1,000 subscribers, hub only (publish_raw), over the bare
    #: websockets broadcast() of the same frames to the same clients
    delivery_cpu_over_bare: float = 1.15
    #: the durable path (publish_change) over the hub only (publish_raw), per delivery
    durable_over_raw: float = 1.1
    targeted_p99_ms: float = 50.0
    broadcast_p99_ms_at_1000: float = 150.0
    saturation_p99_ms: float = 150.0
    idle_rss_per_conn_kb: float = 40.0
    #: idle RSS per subscribed connection over the bare websockets server's, at 5,000+
    idle_rss_over_bare: float = 1.2
    reconnect_s: float = 5.0
    submit_rps: float = 300.0
    pickup_p99_ms: float = 100.0


@dataclass
class Context:
    """What every measurement gets: the run's services, sizes, and its findings so far."""

    services: Services
    sizes: Sizes
    targets: Targets
    smoke: bool
    #: the documented client backoff (docs/protocol.md), read at start
    backoff: Backoff
    poll_delay_s: float
    notes: list[str] = field(default_factory=list)
    #: where py-spy's raw stacks go with --profile (None: no profiling)
    profile_dir: Path | None = None
    #: hub / pipeline presence, probed once
    features: dict[str, Any] = field(default_factory=dict)

    def profile_path(self, name: str) -> Path | None:
        """Where the profile of window `name` goes, or None when not profiling."""
        return None if self.profile_dir is None else self.profile_dir / f"{name}.txt"

    def hub_section(self, name: str) -> Section:
        """A new Section of the report, marked skipped when the build has no hub (GET /ws)."""
        section = Section(name)
        if not self.features.get("hub"):
            section.skipped = "hub (GET /ws) not present yet"
        return section

    def web(self, port: int | None = None, reuse_port: bool = False) -> WebProc:
        """A web process of this run (not started); with `reuse_port`, one of several on
        the same port."""
        return WebProc(self.services, port, reuse_port)
