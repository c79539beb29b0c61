"""A fake of the GCS JSON and XML APIs and Google's OAuth token endpoint, for google-cloud-storage.

- `POST /token`: the service-account JWT grant; the JWT's RS256 signature is
  checked against the test key, and the access token it returns is required
  (as `Authorization: Bearer`) by every JSON API call below;
- `POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart|resumable`,
  `PUT` of resumable chunks (`Content-Range`, 308 until the last);
- `GET /download/storage/v1/b/{bucket}/o/{name}?alt=media` with `x-goog-hash`;
- `DELETE /storage/v1/b/{bucket}/o/{name}`: 204, or 404 when there is no such object;
- `GET /{bucket}/{name}?X-Goog-…`: a V4 signed URL, served only when its RSA
  signature verifies for this object with the test key and it has not expired.

Requests are recorded so tests can assert what the SDK sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SA_EMAIL = "canvasflow@fake-project.iam.gserviceaccount.com"


@dataclass
class StoredObject:
    """An object's bytes and metadata."""

    data: bytes
    content_type: str
    generation: int


@dataclass
class Recorded:
    """One request the fake received (uploads keep their size, not their bytes)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    size: int


@dataclass
class Resumable:
    """A resumable upload in progress."""

    bucket: str
    name: str
    content_type: str
    data: bytearray = field(default_factory=bytearray)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeGcs:
    """The fake's state: one RSA service-account key, the buckets' objects, the requests."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.requests: list[Recorded] = []
        self.tokens: set[str] = set()
        self.uploads: dict[str, Resumable] = {}
        #: why signed-URL GETs were refused, for tests that expect a refusal
        self.refusals: list[str] = []
        #: the fake's clock for signed-URL expiry; a test moves it forward instead of waiting
        self.clock_offset_s = 0.0
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/upload/storage/v1/b/{bucket}/o", self.upload, methods=["POST", "PUT"]),
                Route("/download/storage/v1/b/{bucket}/o/{name:path}", self.download),
                Route("/storage/v1/b/{bucket}/o/{name:path}", self.delete, methods=["DELETE"]),
                Route("/storage/v1/b/{bucket}", self.bucket),
                Route("/{bucket}/{name:path}", self.signed_get),
            ]
        )

    def service_account_file(self, folder: Path, base_url: str) -> Path:
        """Write the key file GOOGLE_APPLICATION_CREDENTIALS names; its token_uri is this fake."""
        self.base_url = base_url
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": SA_EMAIL,
            "client_id": "1",
            "token_uri": f"{base_url}/token",
        }
        path = folder / "service-account.json"
        path.write_text(json.dumps(info))
        return path

    def _record(self, request: Request, size: int) -> None:
        with self.lock:
            self.requests.append(
                Recorded(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    dict(request.headers),
                    size,
                )
            )

    def _verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    # -- OAuth --

    async def token(self, request: Request) -> Response:
        """Exchange a service-account JWT (RS256, signed with the test key) for an access token."""
        form = await request.form()
        self._record(request, 0)
        assertion = str(form.get("assertion", ""))
        try:
            header, payload, sig = assertion.split(".")
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            return JSONResponse({"error": "invalid_grant"}, 400)
        valid = self._verify(_b64url_decode(sig), f"{header}.{payload}".encode())
        if not valid or claims.get("iss") != SA_EMAIL or claims.get("exp", 0) < time.time():
            return JSONResponse({"error": "invalid_grant", "error_description": "bad JWT"}, 400)
        token = f"ya29.fake-{secrets.token_hex(8)}"
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    # -- JSON API --

    async def bucket(self, request: Request) -> Response:
        """Bucket metadata (the SDK reads it once per client to learn the bucket's location)."""
        self._record(request, 0)
        if not self._authorized(request):
            return JSONResponse({"error": {"code": 401, "message": "no valid token"}}, 401)
        name = request.path_params["bucket"]
        return JSONResponse({"kind": "storage#bucket", "id": name, "name": name, "location": "US"})

    def _store(self, bucket: str, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        with self.lock:
            previous = self.objects.get((bucket, name))
            generation = previous.generation + 1 if previous else 1
            self.objects[(bucket, name)] = StoredObject(data, content_type, generation)
        return {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "contentType": content_type,
            "size": str(len(data)),
            "generation": str(generation),
            "metageneration": "1",
            "crc32c": _b64(google_crc32c.value(data).to_bytes(4, "big")),
            "md5Hash": _b64(hashlib.md5(data).digest()),
        }

    async def upload(self, request: Request) -> Response:
        """Multipart uploads, resumable starts and resumable chunks."""
        body = await request.body()
        self._record(request, len(body))
        if not self._authorized(request):
            return JSONResponse({"error": {"code": 401, "message": "no valid token"}}, 401)
        bucket = request.path_params["bucket"]
        kind = request.query_params.get("uploadType")
        if request.method == "POST" and kind == "multipart":
            return self._multipart(request, bucket, body)
        if request.method == "POST" and kind == "resumable":
            meta = json.loads(body or b"{}")
            upload_id = secrets.token_hex(8)
            content_type = meta.get("contentType") or request.headers.get(
                "x-upload-content-type", "application/octet-stream"
            )
            self.uploads[upload_id] = Resumable(bucket, meta["name"], content_type)
            location = (
                f"{self.base_url}/upload/storage/v1/b/{bucket}/o"
                f"?uploadType=resumable&upload_id={upload_id}"
            )
            return Response(status_code=200, headers={"Location": location})
        if request.method == "PUT" and kind == "resumable":
            return self._chunk(request, body)
        return JSONResponse({"error": {"code": 400, "message": "unknown upload"}}, 400)

    def _multipart(self, request: Request, bucket: str, body: bytes) -> Response:
        boundary = request.headers["content-type"].split("boundary=")[1].strip('"').encode()
        parts = body.split(b"--" + boundary)
        meta_part, data_part = parts[1], parts[2]
        meta = json.loads(meta_part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n"))
        head, data = data_part.split(b"\r\n\r\n", 1)
        data = data[: -len(b"\r\n")]
        content_type = head.decode().split("content-type: ")[1].strip()
        resource = self._store(bucket, meta["name"], data, content_type)
        if "crc32c" in meta and meta["crc32c"] != resource["crc32c"]:
            return JSONResponse({"error": {"code": 400, "message": "crc32c mismatch"}}, 400)
        return JSONResponse(resource)

    def _chunk(self, request: Request, body: bytes) -> Response:
        upload = self.uploads[request.query_params["upload_id"]]
        # Content-Range: bytes FIRST-LAST/TOTAL (TOTAL is * until the last chunk)
        spec = request.headers["content-range"].split(" ", 1)[1]
        span, total = spec.split("/")
        if span != "*":
            first = int(span.split("-")[0])
            if first != len(upload.data):
                return JSONResponse({"error": {"code": 400, "message": "chunk out of order"}}, 400)
            upload.data.extend(body)
        if total == "*" or len(upload.data) < int(total):
            return Response(status_code=308, headers={"Range": f"bytes=0-{len(upload.data) - 1}"})
        return JSONResponse(
            self._store(upload.bucket, upload.name, bytes(upload.data), upload.content_type)
        )

    async def delete(self, request: Request) -> Response:
        """Delete an object: 204, or 404 when there is none."""
        self._record(request, 0)
        if not self._authorized(request):
            return JSONResponse({"error": {"code": 401, "message": "no valid token"}}, 401)
        with self.lock:
            gone = self.objects.pop(
                (request.path_params["bucket"], request.path_params["name"]), None
            )
        if gone is None:
            return JSONResponse({"error": {"code": 404, "message": "No such object"}}, 404)
        return Response(status_code=204)

    async def download(self, request: Request) -> Response:
        """The object's bytes (alt=media), with the hashes the SDK checks."""
        self._record(request, 0)
        if not self._authorized(request):
            return JSONResponse({"error": {"code": 401, "message": "no valid token"}}, 401)
        stored = self.objects.get((request.path_params["bucket"], request.path_params["name"]))
        if stored is None:
            return JSONResponse({"error": {"code": 404, "message": "No such object"}}, 404)
        return self._media(stored)

    def _media(self, stored: StoredObject) -> Response:
        crc = _b64(google_crc32c.value(stored.data).to_bytes(4, "big"))
        md5 = _b64(hashlib.md5(stored.data).digest())
        return Response(
            stored.data,
            media_type=stored.content_type,
            headers={
                "x-goog-hash": f"crc32c={crc},md5={md5}",
                "x-goog-generation": str(stored.generation),
            },
        )

    # -- XML API: V4 signed URLs --

    def check_signed_url(self, request: Request) -> str | None:
        """Why this signed GET is refused, or None when its signature and expiry hold."""
        raw_query = request.url.query
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        params = dict(pairs)
        if params.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256":
            return "algorithm"
        credential = params.get("X-Goog-Credential", "")
        email, _, scope = credential.partition("/")
        if email != SA_EMAIL or not scope.endswith("/auto/storage/goog4_request"):
            return "credential"
        if params.get("X-Goog-SignedHeaders") != "host":
            return "signed headers"
        stamp = params.get("X-Goog-Date", "")
        expires_s = int(params.get("X-Goog-Expires", "0"))
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if not 0 < expires_s <= 7 * 24 * 3600:
            return "lifetime"
        if time.time() + self.clock_offset_s > signed_at + expires_s:
            return "expired"
        if scope.split("/")[0] != stamp[:8]:
            return "scope date"
        # the canonical request as the signer built it: sorted, ~-safe quoted query
        canonical_query = "&".join(
            sorted(
                f"{quote(k, safe='~')}={quote(v, safe='~')}"
                for k, v in pairs
                if k != "X-Goog-Signature"
            )
        )
        canonical = "\n".join(
            [
                request.method,
                # the path as sent, still percent-encoded, as the signer quoted it
                request.scope["raw_path"].decode(),
                canonical_query,
                f"host:{request.headers['host']}\n",
                "host",
                "UNSIGNED-PAYLOAD",
            ]
        )
        to_sign = "\n".join(
            [
                "GOOG4-RSA-SHA256",
                stamp,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        try:
            signature = bytes.fromhex(params.get("X-Goog-Signature", ""))
        except ValueError:
            return "signature encoding"
        if not self._verify(signature, to_sign.encode()):
            return "signature"
        return None

    async def signed_get(self, request: Request) -> Response:
        """Serve the object if the V4 signature is good for this very object and unexpired."""
        self._record(request, 0)
        reason = self.check_signed_url(request)
        if reason is not None:
            self.refusals.append(reason)
            xml = f"<Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>"
            return Response(xml, 403, media_type="application/xml")
        name = unquote(request.path_params["name"])
        stored = self.objects.get((request.path_params["bucket"], name))
        if stored is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", 404)
        return self._media(stored)
