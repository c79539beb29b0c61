"""Google Cloud Storage through google-cloud-storage, chosen when GCS_BUCKET is set.

The SDK is synchronous, so every call runs in a thread (`asyncio.to_thread`)
and never blocks the event loop. The SDK uploads objects over 8 MiB as
resumable uploads, here in `chunk_size_bytes` pieces, so a dropped
connection costs one chunk, not the whole video. URLs are V4 signed URLs of
at most 7 days, signed with the service account's own key when the
credentials hold one, or else through IAM `signBlob` with the credentials'
access token (workload identity, Cloud Run, GCE), which needs
`roles/iam.serviceAccountTokenCreator` on that service account.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
from google.api_core import exceptions as gexc
from google.auth import credentials as gcreds
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage

from common.config import ConfigError, Settings
from tasks.storage.base import StorageError
from tasks.storage.local import check_key

#: GCS refuses V4 signatures valid for longer than 7 days
MAX_URL_TTL_S = 7 * 24 * 3600
#: resumable chunk size; GCS wants a multiple of 256 KiB
CHUNK_SIZE_BYTES = 8 << 20
#: cloud-platform, not only devstorage: IAM signBlob needs it when there is no key
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GcsStorage:
    """Objects in one GCS bucket; URLs are V4 signed URLs."""

    def __init__(
        self,
        client: storage.Client,
        bucket: str,
        *,
        signer_email: str | None = None,
        chunk_size_bytes: int = CHUNK_SIZE_BYTES,
    ) -> None:
        if chunk_size_bytes % (256 << 10):
            raise ValueError("chunk_size_bytes must be a multiple of 256 KiB")
        self.client = client
        self.bucket = client.bucket(bucket)
        self.signer_email = signer_email
        self.chunk_size_bytes = chunk_size_bytes
        self._token_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> GcsStorage:
        """A client from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, …)."""
        if not settings.gcs_bucket:
            raise ConfigError("GCS_BUCKET must name a bucket.")
        try:
            credentials, project = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(f"GCS_BUCKET is set but no Google credentials: {exc}") from None
        client = storage.Client(project=project, credentials=credentials)
        return cls(client, settings.gcs_bucket, signer_email=settings.gcs_signer_email)

    @property
    def url_prefix(self) -> str:
        """What every signed URL of this bucket starts with (path-style)."""
        return f"{self.client.api_endpoint.rstrip('/')}/{self.bucket.name}/"

    def _blob(self, key: str, *, upload: bool = False) -> storage.Blob:
        # a chunk size splits uploads the SDK makes resumable (over 8 MiB); on a download it
        # would cost one ranged request per chunk, so downloads go without
        chunk_size = self.chunk_size_bytes if upload else None
        return self.bucket.blob(check_key(key), chunk_size=chunk_size)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key` with its content type."""
        blob = self._blob(key, upload=True)
        await _call(blob.upload_from_string, data, content_type=content_type)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Upload the file at `path`, streamed (resumable when large)."""
        blob = self._blob(key, upload=True)
        await _call(blob.upload_from_filename, str(path), content_type=content_type)

    async def get_bytes(self, key: str) -> bytes:
        """The object at `key`; StorageError when it is missing."""
        try:
            data: bytes = await _call(self._blob(key).download_as_bytes)
        except gexc.NotFound as exc:
            raise StorageError(f"no object at {key!r}: {exc.message}") from None
        return data

    async def delete(self, key: str) -> None:
        """Delete the object at `key`; one already gone is fine."""
        with contextlib.suppress(gexc.NotFound):
            await _call(self._blob(key).delete)

    def _signing_args(self) -> dict[str, Any]:
        """Nothing when the credentials can sign themselves, else the IAM signBlob pair."""
        credentials = self.client._credentials
        if isinstance(credentials, gcreds.Signing) and self.signer_email is None:
            return {}
        email = self.signer_email or getattr(credentials, "service_account_email", None)
        if not email or email == "default":
            # the metadata server calls its account "default" until a refresh names it
            with self._token_lock:
                credentials.refresh(AuthRequest())
            email = self.signer_email or getattr(credentials, "service_account_email", None)
        if not email:
            raise StorageError(
                "these credentials cannot sign URLs: set CANVASFLOW_GCS_SIGNER_EMAIL "
                "to a service account they may sign for"
            )
        with self._token_lock:
            if not credentials.valid:
                credentials.refresh(AuthRequest())
        return {"service_account_email": email, "access_token": credentials.token}

    def _sign(self, key: str, ttl_s: int) -> str:
        args = self._signing_args()
        url: str = self._blob(key).generate_signed_url(
            version="v4",
            expiration=dt.timedelta(seconds=max(1, min(ttl_s, MAX_URL_TTL_S))),
            method="GET",
            **args,
        )
        return url

    async def sign_url(self, key: str, ttl_s: int) -> str:
        """A V4 signed URL for `key`, valid for `ttl_s` seconds (at most 7 days)."""
        if isinstance(self.client._credentials, gcreds.Signing) and self.signer_email is None:
            # a local RSA signature takes well under a millisecond: no thread hop per URL
            return self._sign(check_key(key), ttl_s)
        url: str = await _call(self._sign, check_key(key), ttl_s)
        return url


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking SDK call in a thread.

    Outages (5xx, timeouts, auth) propagate as the SDK raised them, not as
    StorageError: the worker retries those with backoff, while StorageError
    means the object itself is missing, which no retry fixes.
    """
    return await asyncio.to_thread(fn, *args, **kwargs)
