"""Compare-and-swap on one object: the primitive an object-store lock needs instead of rename.

An object store has no rename and no hard link, but S3 (and its compatibles) has conditional
writes: a PUT with ``If-None-Match: *`` creates a key only if none exists, and one with
``If-Match: <etag>`` replaces it only if it is still the version read. Every step of the
output lock is one of these, so the server, not a guard file, decides who wins a race.

``Versioned.of(path)`` picks the implementation for the path's store: S3 through s3fs's own
client, ``memory://`` (tests, one process) under a process lock. Other stores are refused
with a one-line message until their conditional writes are wired here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from saldata.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Version:
    """One read of an object: its bytes, the tag that names this version, and when it was written."""

    data: bytes
    etag: str
    modified: float  # seconds since the epoch, by the store's clock


class Versioned:
    """Conditional reads and writes of one key."""

    @staticmethod
    def of(path) -> Versioned:
        if path.protocol in ("s3", "s3a"):
            return _S3(path)
        if path.protocol == "memory":
            return _Memory(path)
        raise ConfigError(
            f"{path}: the output lock needs conditional writes, which saldata supports on s3:// (and S3-compatible "
            "stores) so far; extract to s3:// or a local path, then copy the output."
        )

    def read(self) -> Version | None:
        raise NotImplementedError

    def create(self, data: bytes) -> str | None:
        """Write ``data`` if the key is absent; its etag, or None if a version exists."""
        raise NotImplementedError

    def replace(self, data: bytes, etag: str) -> str | None:
        """Write ``data`` if the key still holds version ``etag``; the new etag, or None if not."""
        raise NotImplementedError

    def delete(self, etag: str) -> bool:
        """Delete the key if it still holds version ``etag``."""
        raise NotImplementedError


class _S3(Versioned):
    def __init__(self, path):
        self.fs = path.fs
        self.bucket, self.key, _ = self.fs.split_path(path.key)

    def read(self) -> Version | None:
        """Bytes and etag from one GET, so the version judged is the version a later write names."""
        from fsspec.asyn import sync

        async def get():
            reply = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with reply["Body"] as body:
                return reply, await body.read()

        try:
            reply, data = sync(self.fs.loop, get)
        except FileNotFoundError:
            return None
        return Version(data, reply["ETag"], reply["LastModified"].timestamp())

    def create(self, data: bytes) -> str | None:
        return self._put(data, IfNoneMatch="*")

    def replace(self, data: bytes, etag: str) -> str | None:
        return self._put(data, IfMatch=etag)

    def delete(self, etag: str) -> bool:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=etag)
            return True
        except (FileNotFoundError, FileExistsError):
            return False
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            # A store without conditional deletes: compare, then delete. Only a release uses this,
            # and a takeover needs the lock to look stale, which a releasing run's does not.
            now = self.read()
            if now is None or now.etag != etag:
                return False
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key)
            return True

    def _put(self, data: bytes, **condition) -> str | None:
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=data, **condition)["ETag"]
        except (FileExistsError, FileNotFoundError):  # 412 on If-None-Match; 404 on If-Match of a deleted key
            return None
        except OSError as exc:
            if _precondition_failed(exc):
                return None
            raise


def _precondition_failed(exc: OSError) -> bool:
    # s3fs maps 412 for If-Match (and 409, a conditional write racing another) to a plain OSError.
    text = str(exc)
    return "pre-condition" in text or "precondition" in text.lower() or "ConditionalRequestConflict" in text


_MEMORY_GUARD = threading.Lock()


class _Memory(Versioned):
    """memory:// lives in one process: a process lock makes its writes conditional."""

    def __init__(self, path):
        self.fs, self.key = path.fs, path.key

    def read(self) -> Version | None:
        with _MEMORY_GUARD:
            return self._read()

    def _read(self) -> Version | None:
        try:
            data = self.fs.cat_file(self.key)
            info = self.fs.info(self.key)
        except FileNotFoundError:
            return None
        created = info.get("created")
        modified = created.timestamp() if hasattr(created, "timestamp") else float(created or 0)
        return Version(data, _etag(data, modified), modified)

    def create(self, data: bytes) -> str | None:
        with _MEMORY_GUARD:
            if self._read() is not None:
                return None
            return self._write(data)

    def replace(self, data: bytes, etag: str) -> str | None:
        with _MEMORY_GUARD:
            now = self._read()
            if now is None or now.etag != etag:
                return None
            return self._write(data)

    def delete(self, etag: str) -> bool:
        with _MEMORY_GUARD:
            now = self._read()
            if now is None or now.etag != etag:
                return False
            self.fs.rm_file(self.key)
            return True

    def _write(self, data: bytes) -> str:
        self.fs.pipe_file(self.key, data)
        return self._read().etag


def _etag(data: bytes, modified: float) -> str:
    import hashlib

    return hashlib.md5(data + repr(modified).encode()).hexdigest()
