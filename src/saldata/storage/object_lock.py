"""The output lock on an object store: the same rules as ``lock.py``, kept by conditional writes.

``OUT/.saldata.lock`` holds its owner's record plus ``beat``, the owner's time of its last
heartbeat. Every change is a compare-and-swap on the object's etag (``conditional.py``):

- taking a free output is a create-if-absent: of two runs, the store lets exactly one in;
- a heartbeat rewrites the record only if it is still the version this run wrote last, so a run
  whose lock was taken over or deleted learns it at its next beat and never writes it back;
- a stale lock (dead pid on this host, or ``beat`` older than ``stale_after``) is taken over by
  a write conditional on the very version judged stale: a lock that beat in between, or that
  another taker replaced first, makes the write fail and is judged again;
- release deletes the lock only if it is still this run's version.

No rename and no guard file: the store orders the writes, so no interleaving of runs, however
slow, leaves two runs holding the lock. ``check()`` (before a commit's marker and again before its
record) reads the lock and compares the token; as on a local disk, a run that stalls for
``stale_after`` between a check and the write after it can still make that one write.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

from saldata.errors import ConfigError, OutputInUseError, StoreError, first_line
from saldata.storage.conditional import Version, Versioned
from saldata.storage.lock import LOCK_FILE, STALE_AFTER_S, HeldLock, _parse, _unreadable, is_stale, refusal

_PATIENCE_S = 5.0  # takeovers racing other takers settle within a few round trips


def _info(path, seen: Version) -> dict:
    """The lock as ``read_lock`` gives it: age from the owner's last beat (or the object's write time)."""
    record, problem = _parse(seen.data)
    if record is None:
        return {"corrupt": True, "error": _unreadable(path, problem), "path": str(path),
                "heartbeat_age_s": time.time() - seen.modified}  # fmt: skip
    beat = record.get("beat")
    when = beat if isinstance(beat, int | float) and not isinstance(beat, bool) else seen.modified
    return {**record, "heartbeat_age_s": time.time() - when}


def read_object_lock(out) -> dict | None:
    path = out / LOCK_FILE
    try:
        seen = Versioned.of(path).read()
    except ConfigError:  # a store without conditional writes is read plainly: status needs no etag
        if not path.is_file():
            return None
        seen = Version(path.read_bytes(), "", path.stat().st_mtime)
    return _info(path, seen) if seen else None


class ObjectLock(HeldLock):
    """``OutputLock`` for an object store: same interface (``check``, ``lost``, ``took_over``)."""

    def __init__(self, out, run_id: str, stale_after: float = STALE_AFTER_S, heartbeat_s: float | None = None):
        super().__init__(out / LOCK_FILE, run_id, stale_after, heartbeat_s)
        self._store = Versioned.of(self.path)
        self._etag: str | None = None
        self._record = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id,
                        "started": time.time(), "token": self.token}  # fmt: skip
        self._guard = threading.Lock()  # the heartbeat thread and check() never write at once

    def _body(self) -> bytes:
        return json.dumps({**self._record, "beat": time.time()}).encode()

    def __enter__(self) -> ObjectLock:
        self._require_conditional_writes()
        deadline = time.monotonic() + _PATIENCE_S
        while time.monotonic() < deadline:
            self._etag = self._store.create(self._body()) or self._ours()
            if self._etag:
                break
            seen = self._store.read()
            if seen is None:
                continue  # released in between
            info = _info(self.path, seen)
            if not is_stale(info, self.stale_after):
                raise OutputInUseError(refusal(self.path, info, self.stale_after))
            self._etag = self._store.replace(self._body(), seen.etag) or self._ours()  # only the version judged
            if self._etag:
                self.took_over = info
                break
        else:
            raise StoreError(
                f"Could not take the lock {self.path}: other runs keep taking it over. Wait and rerun the same command."
            )
        self._thread = threading.Thread(target=self._beat, name="saldata-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _ours(self) -> str | None:
        """The lock's etag if it holds this run's token: a conditional write the client retried after
        it had landed is refused (the key is no longer what it was), though it did what was asked."""
        seen = self._store.read()
        record = _parse(seen.data)[0] if seen else None
        return seen.etag if record and record.get("token") == self.token else None

    def _require_conditional_writes(self) -> None:
        """Refuse a store that ignores If-None-Match: there two runs would both own the output.

        One scratch key, created twice: the second create must be refused."""
        probe = Versioned.of(self.path.with_name(f"{LOCK_FILE}.probe-{self.token}"))
        try:
            first, second = probe.create(b"probe"), probe.create(b"probe again")
        finally:
            self.path.with_name(f"{LOCK_FILE}.probe-{self.token}").unlink(missing_ok=True)
        if not first or second:
            raise StoreError(
                f"{self.path.parent}: this store ignores conditional writes (If-None-Match), so it cannot keep one "
                "run per output; extract to a local folder or to a store that honours them (S3, MinIO), then copy."
            )

    def _ownership_problem(self) -> str | None:
        stop = "this run stops writing. Rerun the same command once"
        try:
            seen = self._store.read()
        except Exception as exc:  # no answer from the store: ownership cannot be shown, so do not commit
            return f"The lock {self.path} cannot be read ({first_line(exc)}); {stop} the store answers."
        if seen is None:
            return f"The lock {self.path} was removed while this run held it; {stop} no other run is on this output."
        record, problem = _parse(seen.data)
        if seen.etag == self._etag or (record and record.get("token") == self.token):
            return None
        if record is None:
            return f"The lock {self.path} was replaced by an unreadable object ({problem}); {stop} no run is on it."
        return (
            f"The lock {self.path} was taken by run {record['run_id']} (pid {record['pid']} on {record['host']}); "
            f"{stop} that run ends."
        )

    def check(self) -> None:
        """Raise ``StoreError`` unless this run still owns its lock (one GET)."""
        with self._guard:
            if not self.lost and (problem := self._ownership_problem()):
                self._lose(problem)
        if self.lost:
            raise StoreError(self._lost_reason)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._guard:
                try:
                    etag = self._store.replace(self._body(), self._etag) or self._ours()
                except Exception as exc:  # no answer (the client's errors are not all OSError): beat again
                    print(f"saldata: the lock heartbeat failed ({first_line(exc)}); retrying", file=sys.stderr,
                          flush=True)  # fmt: skip
                    continue
                if etag:
                    self._etag = etag
                    continue
                self._lose(self._ownership_problem() or f"The lock {self.path} changed under this run.")
            print(f"saldata: {self._lost_reason}", file=sys.stderr, flush=True)
            return  # never write it back: another run may own the output now

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.heartbeat_s + 30)
        with self._guard:
            if not self.lost and self._etag:
                self._store.delete(self._etag)  # only our own version: a taker's lock stays
