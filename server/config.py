"""Settings read from the environment: the one place every knob is named."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


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
    max_upload_bytes: int = 20 << 20
    max_upload_pixels: int = 40_000_000
    media_url_ttl_s: int = 24 * 3600
    login_attempts_per_15min: int = 10
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
    gcs_bucket: str | None = None
    #: service account that signs GCS URLs through IAM when the credentials hold no key
    gcs_signer_email: str | None = None


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


def _str(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw else None


def load_settings() -> Settings:
    """Build Settings from CANVASFLOW_* and the conventional variables."""
    public_url = _str("CANVASFLOW_PUBLIC_URL") or "http://127.0.0.1:8000"
    origins_raw = _str("CANVASFLOW_ALLOWED_ORIGINS")
    if origins_raw:
        origins = tuple(o.strip().rstrip("/") for o in origins_raw.split(",") if o.strip())
    else:
        # the public URL plus its localhost twin, so `canvasflow dev` just works
        origins = (public_url.rstrip("/"), public_url.rstrip("/").replace("127.0.0.1", "localhost"))
    return Settings(
        database_url=_str("DATABASE_URL"),
        redis_url=_str("REDIS_URL"),
        data_dir=Path(_str("CANVASFLOW_DATA_DIR") or ".data"),
        namespace=_str("CANVASFLOW_NAMESPACE") or "cf",
        secret_key=_str("CANVASFLOW_SECRET_KEY"),
        allowed_origins=origins,
        public_url=public_url.rstrip("/"),
        session_ttl_s=_int("CANVASFLOW_SESSION_TTL_S", 30 * 24 * 3600),
        cookie_secure=public_url.startswith("https://"),
        max_body_bytes=_int("CANVASFLOW_MAX_BODY_BYTES", 1 << 20),
        max_upload_bytes=_int("CANVASFLOW_MAX_UPLOAD_BYTES", 20 << 20),
        max_upload_pixels=_int("CANVASFLOW_MAX_UPLOAD_PIXELS", 40_000_000),
        media_url_ttl_s=min(_int("CANVASFLOW_MEDIA_URL_TTL_S", 24 * 3600), 7 * 24 * 3600),
        login_attempts_per_15min=_int("CANVASFLOW_LOGIN_ATTEMPTS_PER_15MIN", 10),
        job_timeout_s=_int("CANVASFLOW_JOB_TIMEOUT_S", 900),
        job_max_tries=_int("CANVASFLOW_JOB_MAX_TRIES", 3),
        worker_poll_delay_s=_float("CANVASFLOW_WORKER_POLL_DELAY_S", 0.05),
        worker_max_jobs=_positive("CANVASFLOW_WORKER_MAX_JOBS", 10),
        gemini_api_key=_str("GEMINI_API_KEY"),
        veo_project=_str("CANVASFLOW_VEO_PROJECT"),
        veo_location=_str("CANVASFLOW_VEO_LOCATION") or "us-central1",
        veo_model=_str("CANVASFLOW_VEO_MODEL") or "veo-3.1-generate-001",
        veo_base_url=_str("CANVASFLOW_VEO_BASE_URL"),
        veo_poll_interval_s=_float("CANVASFLOW_VEO_POLL_INTERVAL_S", 10.0),
        gcs_bucket=_str("GCS_BUCKET"),
        gcs_signer_email=_str("CANVASFLOW_GCS_SIGNER_EMAIL"),
    )
