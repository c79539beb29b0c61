"""Settings read from the environment: the one place every variable is read and defaulted.

Every process (web, worker, `canvasflow dev`, `canvasflow watch`) builds one
`Settings` with `load_settings()`; nothing else in canvasflow reads
`os.environ` for configuration. Each default is written once, on the field.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from common.prices import PriceTable, parse_prices, to_micros

#: GCS V4 signed URLs cannot outlive 7 days; local ones are held to the same cap
MAX_URL_TTL_S = 7 * 24 * 3600
#: the largest image canvasflow stores (larger uploads are downscaled to it) and so the largest
#: a job decodes: 2560x2560 covers a 1080p frame of either orientation with room to zoom
MAX_STORED_IMAGE_PIXELS = 2560 * 2560


#: the periods a budget may run for (CANVASFLOW_BUDGET_PERIOD)
BUDGET_PERIODS = ("day", "week", "month")


class ConfigError(Exception):
    """An environment variable holds a value canvasflow cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Process settings; see the configuration table in README.md."""

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".data")
    #: prefix of every Redis key and channel, so several deployments (or test
    #: runs) can share one Redis without hearing each other
    namespace: str = "cf"
    #: signs local media URLs; generated and kept under data_dir when unset
    secret_key: str | None = None
    #: origins whose browsers may use cookies and open the websocket
    allowed_origins: tuple[str, ...] = ()
    public_url: str = "http://127.0.0.1:8000"
    session_ttl_s: int = 30 * 24 * 3600
    cookie_secure: bool = False
    max_body_bytes: int = 1 << 20
    #: a node's `data` as JSON: every node.updated event carries all of it
    max_node_data_bytes: int = 32 << 10
    max_nodes_per_project: int = 1000
    #: websocket: bytes of frames one connection may have queued beyond the one in flight
    ws_send_queue_max_bytes: int = 4 << 20
    #: websocket: a send the client has not taken in this long ends the connection
    ws_write_timeout_s: float = 30.0
    max_upload_bytes: int = 20 << 20
    max_upload_pixels: int = 40_000_000
    media_url_ttl_s: int = 24 * 3600
    #: failed log ins into one account from one client address before that address is refused
    #: for that account; as many failures from anywhere start the account's slow-down
    login_attempts_per_15min: int = 10
    #: failed log ins from one client address, whatever the accounts, before it is refused
    login_address_attempts_per_15min: int = 100
    #: the longest wait the account slow-down imposes (it doubles per failure from 1 s)
    login_max_delay_s: float = 60.0
    #: sign ups from one client address per hour
    signups_per_hour: int = 20
    #: proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs; "*": any)
    trusted_proxies: tuple[str, ...] = ()
    #: the longest a request's headers may take to arrive, from its first byte
    header_timeout_s: float = 10.0
    #: the longest a request body may pause between two pieces while the app waits for it
    body_timeout_s: float = 30.0
    #: open connections (HTTP and websocket) one web process holds; more are refused with 503
    max_connections: int = 20_000
    #: bytes of uploaded images one user's projects may hold
    storage_quota_bytes: int = 1 << 30
    job_timeout_s: int = 900
    job_max_tries: int = 3
    worker_poll_delay_s: float = 0.05
    #: jobs one worker runs at once (local renders each take a core while they draw)
    worker_max_jobs: int = 10
    gemini_api_key: str | None = None
    #: Veo runs on Vertex AI: a project (with ADC credentials) or, without one, the API key
    veo_project: str | None = None
    veo_location: str = "us-central1"
    veo_model: str = "veo-3.1-generate-001"
    #: another address for the Veo API (a proxy, or the tests' fake)
    veo_base_url: str | None = None
    #: first wait between two polls of a Veo operation; grows 1.5x per poll up to 60 s
    veo_poll_interval_s: float = 10.0
    #: Gemini image model of image_gen nodes (same credentials as Veo)
    image_model: str = "gemini-2.5-flash-image"
    #: another address for the Gemini image API (a proxy, or the tests' fake)
    image_base_url: str | None = None
    gcs_bucket: str | None = None
    #: service account that signs GCS URLs through IAM when the credentials hold no key
    gcs_signer_email: str | None = None
    #: the SDK's own STORAGE_EMULATOR_HOST: GCS calls and signed URLs go there instead
    gcs_emulator_host: str | None = None
    #: worker: how long a job claimed by a worker that stopped answering stays blocked
    job_lease_s: float = 30.0
    #: worker: first backoff after a transient provider error (doubles each try)
    job_retry_base_s: float = 5.0
    #: worker: serve Prometheus metrics on this port (None: no endpoint)
    worker_metrics_port: int | None = None
    #: the longest a query waits for a free pooled Postgres connection before it
    #: fails with 503 `unavailable` (also bounds handing a connection back)
    db_acquire_timeout_s: float = 5.0
    #: /healthz answers 503 once no Postgres connection could be had for this long
    db_unhealthy_after_s: float = 30.0
    #: the price table: the defaults of common/prices.py with CANVASFLOW_PRICES applied
    prices: PriceTable = msgspec.field(default_factory=lambda: parse_prices(None))
    #: what one user may spend per budget period, in micro-units (None: no limit)
    budget_micros: int | None = None
    #: "day", "week" (from Monday) or "month", in UTC
    budget_period: str = "month"
    log_level: str = "info"
    #: `canvasflow web` / `dev` listen address (HOST, PORT); dev stays on loopback without HOST
    host: str = "0.0.0.0"
    dev_host: str = "127.0.0.1"
    port: int = 8000
    #: `canvasflow watch`: the server to follow and the session token to follow it with
    watch_url: str | None = None
    watch_token: str | None = None


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _positive(name: str, default: int) -> int:
    value = _int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name) or ""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _positive_float(name: str, default: float) -> float:
    value = _float(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be above 0, got {value:g}")
    return value


def _str(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw else None


def _optional_int(name: str) -> int | None:
    return None if _str(name) is None else _int(name, 0)


def _prices() -> PriceTable:
    try:
        return parse_prices(_str("CANVASFLOW_PRICES"))
    except ValueError as exc:
        raise ConfigError(f"CANVASFLOW_PRICES {exc}") from None


def _budget() -> int | None:
    raw = _str("CANVASFLOW_BUDGET")
    if raw is None:
        return None
    amount = _float("CANVASFLOW_BUDGET", 0.0)
    if not amount >= 0 or amount == float("inf"):
        raise ConfigError(f"CANVASFLOW_BUDGET must be an amount of 0 or more, got {raw!r}")
    return to_micros(amount)


def _budget_period() -> str:
    period = (_str("CANVASFLOW_BUDGET_PERIOD") or _DEFAULTS.budget_period).lower()
    if period not in BUDGET_PERIODS:
        raise ConfigError(
            f"CANVASFLOW_BUDGET_PERIOD must be one of {', '.join(BUDGET_PERIODS)}, got {period!r}"
        )
    return period


_DEFAULTS = Settings()


def load_settings() -> Settings:
    """Build Settings from CANVASFLOW_* and the conventional variables."""
    d = _DEFAULTS
    public_url = _str("CANVASFLOW_PUBLIC_URL") or d.public_url
    origins_raw = _str("CANVASFLOW_ALLOWED_ORIGINS")
    if origins_raw:
        origins = tuple(o.strip().rstrip("/") for o in origins_raw.split(",") if o.strip())
    else:
        # the public URL plus its localhost twin, so `canvasflow dev` just works
        origins = (public_url.rstrip("/"), public_url.rstrip("/").replace("127.0.0.1", "localhost"))
    return Settings(
        database_url=_str("DATABASE_URL"),
        redis_url=_str("REDIS_URL"),
        data_dir=Path(_str("CANVASFLOW_DATA_DIR") or d.data_dir),
        namespace=_str("CANVASFLOW_NAMESPACE") or d.namespace,
        secret_key=_str("CANVASFLOW_SECRET_KEY"),
        allowed_origins=origins,
        public_url=public_url.rstrip("/"),
        session_ttl_s=_int("CANVASFLOW_SESSION_TTL_S", d.session_ttl_s),
        cookie_secure=public_url.startswith("https://"),
        max_body_bytes=_int("CANVASFLOW_MAX_BODY_BYTES", d.max_body_bytes),
        max_node_data_bytes=_positive("CANVASFLOW_MAX_NODE_DATA_BYTES", d.max_node_data_bytes),
        max_nodes_per_project=_positive(
            "CANVASFLOW_MAX_NODES_PER_PROJECT", d.max_nodes_per_project
        ),
        ws_send_queue_max_bytes=_positive(
            "CANVASFLOW_WS_SEND_QUEUE_MAX_BYTES", d.ws_send_queue_max_bytes
        ),
        ws_write_timeout_s=_float("CANVASFLOW_WS_WRITE_TIMEOUT_S", d.ws_write_timeout_s),
        max_upload_bytes=_int("CANVASFLOW_MAX_UPLOAD_BYTES", d.max_upload_bytes),
        max_upload_pixels=_int("CANVASFLOW_MAX_UPLOAD_PIXELS", d.max_upload_pixels),
        media_url_ttl_s=min(_int("CANVASFLOW_MEDIA_URL_TTL_S", d.media_url_ttl_s), MAX_URL_TTL_S),
        login_attempts_per_15min=_positive(
            "CANVASFLOW_LOGIN_ATTEMPTS_PER_15MIN", d.login_attempts_per_15min
        ),
        login_address_attempts_per_15min=_positive(
            "CANVASFLOW_LOGIN_ADDRESS_ATTEMPTS_PER_15MIN", d.login_address_attempts_per_15min
        ),
        login_max_delay_s=max(1.0, _float("CANVASFLOW_LOGIN_MAX_DELAY_S", d.login_max_delay_s)),
        signups_per_hour=_positive("CANVASFLOW_SIGNUPS_PER_HOUR", d.signups_per_hour),
        trusted_proxies=_list("CANVASFLOW_TRUSTED_PROXIES"),
        header_timeout_s=_float("CANVASFLOW_HEADER_TIMEOUT_S", d.header_timeout_s),
        body_timeout_s=_float("CANVASFLOW_BODY_TIMEOUT_S", d.body_timeout_s),
        max_connections=_positive("CANVASFLOW_MAX_CONNECTIONS", d.max_connections),
        storage_quota_bytes=_int("CANVASFLOW_STORAGE_QUOTA_BYTES", d.storage_quota_bytes),
        job_timeout_s=_int("CANVASFLOW_JOB_TIMEOUT_S", d.job_timeout_s),
        job_max_tries=_int("CANVASFLOW_JOB_MAX_TRIES", d.job_max_tries),
        worker_poll_delay_s=_float("CANVASFLOW_WORKER_POLL_DELAY_S", d.worker_poll_delay_s),
        worker_max_jobs=_positive("CANVASFLOW_WORKER_MAX_JOBS", d.worker_max_jobs),
        gemini_api_key=_str("GEMINI_API_KEY"),
        veo_project=_str("CANVASFLOW_VEO_PROJECT"),
        veo_location=_str("CANVASFLOW_VEO_LOCATION") or d.veo_location,
        veo_model=_str("CANVASFLOW_VEO_MODEL") or d.veo_model,
        veo_base_url=_str("CANVASFLOW_VEO_BASE_URL"),
        veo_poll_interval_s=_float("CANVASFLOW_VEO_POLL_INTERVAL_S", d.veo_poll_interval_s),
        image_model=_str("CANVASFLOW_IMAGE_MODEL") or d.image_model,
        image_base_url=_str("CANVASFLOW_IMAGE_BASE_URL"),
        gcs_bucket=_str("GCS_BUCKET"),
        gcs_signer_email=_str("CANVASFLOW_GCS_SIGNER_EMAIL"),
        gcs_emulator_host=_str("STORAGE_EMULATOR_HOST"),
        job_lease_s=max(1.0, _float("CANVASFLOW_JOB_LEASE_S", d.job_lease_s)),
        job_retry_base_s=max(0.0, _float("CANVASFLOW_JOB_RETRY_BASE_S", d.job_retry_base_s)),
        worker_metrics_port=_optional_int("CANVASFLOW_WORKER_METRICS_PORT"),
        db_acquire_timeout_s=_positive_float(
            "CANVASFLOW_DB_ACQUIRE_TIMEOUT_S", d.db_acquire_timeout_s
        ),
        db_unhealthy_after_s=_positive_float(
            "CANVASFLOW_DB_UNHEALTHY_AFTER_S", d.db_unhealthy_after_s
        ),
        prices=_prices(),
        budget_micros=_budget(),
        budget_period=_budget_period(),
        log_level=(_str("CANVASFLOW_LOG_LEVEL") or d.log_level).lower(),
        host=_str("HOST") or d.host,
        dev_host=_str("HOST") or d.dev_host,
        port=_int("PORT", d.port),
        watch_url=_str("CANVASFLOW_URL") or _str("CANVASFLOW_PUBLIC_URL"),
        watch_token=_str("CANVASFLOW_TOKEN"),
    )
