"""Every Prometheus metric canvasflow exports, in one place.

The web process serves them at /metrics; a worker serves its own on
CANVASFLOW_WORKER_METRICS_PORT.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "canvasflow_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "canvasflow_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_IN_FLIGHT = Gauge("canvasflow_http_requests_in_flight", "HTTP requests being served now")
EVENTS_PUBLISHED = Counter(
    "canvasflow_events_published_total", "Seq'd events published after commit, by kind", ["kind"]
)
WS_CONNECTIONS = Gauge("canvasflow_ws_connections", "Open websocket connections")
WS_SUBSCRIPTIONS = Gauge("canvasflow_ws_subscriptions", "Project subscriptions across connections")
WS_CHANNELS = Gauge("canvasflow_ws_channels", "Project channels this process listens to on Redis")
WS_FRAMES_DELIVERED = Counter(
    "canvasflow_ws_frames_delivered_total", "Frames queued to websocket clients, by type", ["type"]
)
WS_RESYNCS = Counter(
    "canvasflow_ws_resyncs_total",
    "Clients told to resync (slow consumer, hub reconnect)",
    ["reason"],
)
WS_SEND_QUEUE = Histogram(
    "canvasflow_ws_send_queue_depth",
    "Depth of a client's send queue when a frame is added",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
WS_GAP_FILLS = Counter(
    "canvasflow_ws_gap_fills_total", "Events the hub read from Postgres to fill a gap in Redis"
)
JOBS = Counter("canvasflow_jobs_total", "Job status transitions", ["type", "status"])
JOB_DURATION = Histogram(
    "canvasflow_job_duration_seconds",
    "Time from submit to a final status",
    ["type", "status"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
)
QUEUE_DEPTH = Gauge("canvasflow_queue_depth", "Jobs waiting in the arq queue")
PENDING_JOBS = Gauge(
    "canvasflow_pending_jobs",
    "Pending jobs by queue position band (1, 2-5, 6-20, 21+), as the queue ticker last saw them",
    ["position"],
)
ETA_ERROR = Histogram(
    "canvasflow_eta_error_ratio",
    "|estimated - actual| / actual run time of a completed job whose kind had measurements",
    ["type"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5),
)
ETA_ESTIMATED = Histogram(
    "canvasflow_eta_estimated_seconds",
    "Estimated run time of a completed job (compare canvasflow_eta_actual_seconds)",
    ["type"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
ETA_ACTUAL = Histogram(
    "canvasflow_eta_actual_seconds",
    "Measured run time (first start to completion) of a completed job",
    ["type"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
BUDGET_MONEY = Counter(
    "canvasflow_budget_money_total",
    "Money (in the price table's currency) reserved at submit, settled or released at the end",
    ["kind"],
)
SWEEPER_ACTIONS = Counter("canvasflow_sweeper_actions_total", "What the sweeper did", ["action"])
