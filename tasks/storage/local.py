"""Local-directory storage served by the web process at HMAC-signed, expiring URLs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from tasks.storage.base import StorageError

MEDIA_PREFIX = "/media/"
# keys canvasflow makes: folders and file names of letters, digits, dash, dot, underscore
_KEY_RE = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*$")


class InvalidKey(StorageError):
    """The key is not one canvasflow could have made (absolute, `..`, odd characters)."""


def check_key(key: str) -> str:
    """Return `key` if it is a plain relative key; raise InvalidKey otherwise."""
    if len(key) > 512 or not _KEY_RE.match(key) or any(p in ("..", ".") for p in key.split("/")):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Objects as files under `root`; URLs are `{base_url}/media/{key}?exp=…&sig=…`."""

    def __init__(self, root: Path, secret: bytes, base_url: str = "") -> None:
        self.root = root.resolve()
        self.secret = secret
        self.base_url = base_url.rstrip("/")

    def path_for(self, key: str) -> Path:
        """The file holding `key`; never outside the root."""
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"invalid storage key {key!r}")
        return path

    def _write_atomically(self, key: str, write: object) -> None:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(write, bytes):
                    fh.write(write)
                else:
                    assert isinstance(write, Path)
                    with write.open("rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)
            # readers never see a half-written object
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key`."""
        await asyncio.to_thread(self._write_atomically, key, data)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Copy the file at `path` to `key`."""
        await asyncio.to_thread(self._write_atomically, key, path)

    async def get_bytes(self, key: str) -> bytes:
        """The object at `key`."""
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise StorageError(f"no object at {key!r}") from None

    async def delete(self, key: str) -> None:
        """Remove the file of `key`, if there is one."""
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)

    def signature(self, key: str, expires_at: int) -> str:
        """The hex HMAC-SHA256 of key and expiry."""
        msg = f"{key}\n{expires_at}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    async def sign_url(self, key: str, ttl_s: int) -> str:
        """A URL fetching `key` until `ttl_s` seconds from now."""
        check_key(key)
        expires_at = int(time.time()) + ttl_s
        sig = self.signature(key, expires_at)
        return f"{self.base_url}{MEDIA_PREFIX}{quote(key)}?exp={expires_at}&sig={sig}"

    def verify(self, key: str, exp: str, sig: str) -> bool:
        """Whether `sig` is valid for `key` and `exp`, and `exp` has not passed."""
        # isascii: str.isdigit() accepts "²" and friends, which int() refuses
        if not (exp.isascii() and exp.isdigit()) or int(exp) < time.time():
            return False
        # bytes: compare_digest refuses non-ASCII str, and query strings can hold anything
        expected = self.signature(key, int(exp)).encode()
        return hmac.compare_digest(expected, sig.encode("utf-8", "replace"))
