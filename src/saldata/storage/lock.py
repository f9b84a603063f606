"""One run per output directory: a lock that cannot be stolen, taken over only when its owner is gone.

``OUT/.saldata.lock`` holds its owner's record (host, pid, run id, start time, a random token). Rules:

- It is created whole: the record is written and fsynced to a temp file, then hard-linked into place,
  which fails if a lock exists. No reader ever sees a lock without its owner.
- A lock is stale when its owner is on this host and its pid is gone, or when its heartbeat (the
  file's mtime, touched every few seconds by the owner) is older than ``stale_after`` (an owner on
  another node that died, or a process hung that long). Only a stale lock is taken over.
- An unreadable lock (empty, cut short, not a record) counts as in use until its mtime is older than
  ``stale_after``: it may be an older saldata that has not written its pid yet.
- Only the owner removes its lock, and the owner checks, on every heartbeat and on ``check()``, that
  the file still holds its token. A run whose lock was removed or replaced stops writing: the heartbeat
  never recreates it, and ``check()`` (called before every commit) raises ``StoreError``.

POSIX has no "delete this file only if it is still that file". So takers go one at a time through a
guard file and move the stale lock aside before checking it (``_remove_stale``), and the owner's release
compares, then deletes (``OutputLock.__exit__``). What remains needs a process stalled for
``stale_after`` at one exact point, or a taker killed inside its milliseconds-long takeover while others
race; its worst outcome is a run that finds its lock gone and stops at its next ``check()``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import ConfigError, OutputInUseError, StoreError

LOCK_FILE = ".saldata.lock"
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0

_MAX_BYTES = 64 * 1024  # a record is ~200 bytes; a file this large is not one
_PATIENCE_S = 1.0  # a takeover holds its guard for milliseconds; one held longer is another run's to finish
_GUARD_WAIT_S = 0.005


def _valid_pid(pid) -> bool:
    return type(pid) is int and 0 < pid < 2**31  # 0 and negatives would make os.kill signal a group


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _parse(raw: bytes) -> tuple[dict | None, str | None]:
    """The owner record in ``raw``, or None and why it is not one (for the message)."""
    if not raw:
        return None, "empty"
    if len(raw) > _MAX_BYTES:
        return None, "too large to be a lock"
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        return None, "not JSON: cut short or damaged"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object"
    if not all(isinstance(record.get(k), str) and record[k].isprintable() for k in ("host", "run_id")):
        return None, "no host or run_id"
    if not _valid_pid(record.get("pid")):
        return None, f"pid {record.get('pid')!r:.40} is not a process id"
    return record, None


def _unreadable(path: Path, problem: str) -> str:
    return (
        f"The lock {path} is unreadable ({problem}). Wait if a saldata run may be starting on this output; "
        f"delete the file if no run is alive on it."
    )


@dataclass(frozen=True)
class _Seen:
    """One read of a lock file: its bytes, the stat of the very file they came from, and its record."""

    path: Path
    raw: bytes
    stat: os.stat_result
    record: dict | None  # None when unreadable
    problem: str | None

    def same_file(self, other: _Seen) -> bool:
        # Inode and bytes: a new lock may reuse a freed inode, but not with the old owner's token.
        return (self.stat.st_dev, self.stat.st_ino, self.raw) == (other.stat.st_dev, other.stat.st_ino, other.raw)

    def info(self) -> dict:
        """The lock as ``read_lock`` gives it."""
        age = time.time() - self.stat.st_mtime
        if self.record is not None:
            return {**self.record, "heartbeat_age_s": age}
        return {"corrupt": True, "error": _unreadable(self.path, self.problem), "path": str(self.path),
                "heartbeat_age_s": age}  # fmt: skip


def _load(path: Path) -> _Seen | None:
    """Read the file at ``path`` once; None if there is none. What it holds never raises."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as e:  # e.g. another user's unreadable file: judged by its age like any unreadable lock
        try:
            return _Seen(path, b"", os.stat(path), None, f"cannot be opened: {e.strerror}")
        except FileNotFoundError:
            return None
        except OSError as e2:
            raise StoreError(f"Cannot read the lock {path}: {e2.strerror}.") from e2
    try:
        st = os.fstat(fd)  # of the file we read, not of whatever is at the path a moment later
        try:
            raw = os.read(fd, _MAX_BYTES + 1)
        except OSError as e:
            return _Seen(path, b"", st, None, f"cannot be read: {e.strerror}")
    finally:
        os.close(fd)
    return _Seen(path, raw, st, *_parse(raw))


def read_lock(out: Path) -> dict | None:
    """The lock on ``out`` with its ``heartbeat_age_s``, or None if there is none.

    Never raises for a corrupt file (so ``saldata status`` keeps working): it returns
    ``{"corrupt": True, "error": <one-line message naming the file and what to do>, "path": ...,
    "heartbeat_age_s": ...}``, which ``is_stale`` judges by age alone.
    """
    from saldata.storage.location import is_object

    if is_object(out):
        from saldata.storage.object_lock import read_object_lock

        return read_object_lock(out)
    seen = _load(Path(out) / LOCK_FILE)
    return seen.info() if seen else None


def is_stale(info: dict, stale_after: float = STALE_AFTER_S) -> bool:
    """Whether the lock ``info`` (from ``read_lock``) may be taken over: its owner is a dead pid on this
    host, or its heartbeat is older than ``stale_after``. A corrupt one goes by its age alone."""
    age = info.get("heartbeat_age_s") if isinstance(info, dict) else None
    if isinstance(age, bool) or not isinstance(age, int | float):
        raise StoreError(
            f"is_stale needs a lock as read_lock returns it; this {type(info).__name__} has no heartbeat_age_s."
        )
    pid = info.get("pid")
    here = not info.get("corrupt") and info.get("host") == socket.gethostname()
    if here and _valid_pid(pid) and not _pid_alive(pid):
        return True
    # A reused pid looks alive; the heartbeat then decides, as for another host's run.
    return age > stale_after


def _create(path: Path, body: bytes) -> bool:
    """Put a file holding ``body`` at ``path`` unless one is there; False if one is."""
    tmp = path.with_name(f"{path.name}.new.{secrets.token_hex(8)}")
    try:
        with open(tmp, "xb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists: the lock appears with its owner in it
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        # No hard links on this filesystem (FAT, some FUSE mounts): create exclusively, then write. A
        # reader in between sees an empty file, which counts as in use, so this stays safe.
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError as e:
        raise StoreError(f"Cannot create the lock {path}: {e.strerror}.") from e
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale(path: Path, seen: _Seen, stale_after: float) -> bool:
    """Take the file ``seen`` away from ``path`` if it is still there and still stale; True if done.

    It is renamed aside first and checked there, so the check applies to the very file taken, not to
    whatever is at ``path`` a moment later. If it was not the one judged, it is put back; should a new
    lock have appeared in that instant, the new one stands and the displaced owner stops at its next check.
    """
    aside = path.with_name(f"{path.name}.aside.{secrets.token_hex(8)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    except OSError as exc:  # immutable, or in a folder this user may not change (a sticky folder of another's)
        raise StoreError(
            f"The lock {path} is stale (its run is gone) but cannot be removed: {exc.strerror}. Check that no "
            f"saldata run uses {path.parent}, delete {path} (as its owner, or after chattr -i), and rerun."
        ) from None
    try:
        now = _load(aside)
        if now is not None and now.same_file(seen) and is_stale(now.info(), stale_after):
            return True
        with contextlib.suppress(OSError):  # a new lock took the place (or no hard links): this one is dropped
            os.link(aside, path)
        return False
    finally:
        aside.unlink(missing_ok=True)


def refusal(path, info: dict, stale_after: float) -> str:
    """Why a run may not take the lock ``info`` (as ``read_lock`` gives it) at ``path``: one line."""
    if info.get("corrupt"):
        return (
            f"{info['error']} It counts as in use until unchanged for {stale_after:.0f} s "
            f"(now {info['heartbeat_age_s']:.0f} s)."
        )
    return (
        f"{path.parent} is in use by run {info['run_id']} (pid {info['pid']} on {info['host']}, "
        f"heartbeat {info['heartbeat_age_s']:.0f} s ago). Wait for it to finish; if that job is dead, "
        f"delete {path}."
    )


def heartbeat_period(stale_after: float, heartbeat_s: float | None) -> float:
    """The heartbeat for ``stale_after``: a few beats per stale period, so a live lock never looks stale."""
    beat = min(HEARTBEAT_S, stale_after / 4) if heartbeat_s is None else heartbeat_s
    if not 0 < beat < stale_after:
        raise ConfigError(f"The lock heartbeat ({beat} s) must be shorter than stale_after ({stale_after} s).")
    return beat


class HeldLock:
    """What every output lock keeps while a run holds it; ``OutputLock`` and ``ObjectLock`` add how."""

    def __init__(self, path, run_id: str, stale_after: float, heartbeat_s: float | None):
        self.path = path
        self.run_id = run_id
        self.stale_after = stale_after
        self.heartbeat_s = heartbeat_period(stale_after, heartbeat_s)
        self.token = secrets.token_hex(16)
        self.took_over: dict | None = None
        self.lost = False
        self._lost_reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _lose(self, reason: str) -> None:
        self._lost_reason = reason
        self.lost = True


class OutputLock(HeldLock):
    """Held for a whole run: refuses a second live run on the same output, takes over a dead one's lock.

    ``took_over``: the lock this run took over (as ``read_lock`` gives it), else None.
    ``lost``: True once this run found its lock removed or replaced; ``check()`` then raises for good.
    """

    def __init__(self, out: Path, run_id: str, stale_after: float = STALE_AFTER_S, heartbeat_s: float | None = None):
        super().__init__(Path(out) / LOCK_FILE, run_id, stale_after, heartbeat_s)

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id,
                  "started": time.time(), "token": self.token}  # fmt: skip
        body = json.dumps(record).encode()
        deadline = time.monotonic() + _PATIENCE_S
        while time.monotonic() < deadline:
            if _create(self.path, body):
                break
            seen = _load(self.path)
            if seen is None:
                continue  # released in between: try again
            if not is_stale(seen.info(), self.stale_after):
                raise OutputInUseError(self._refusal(seen))
            if self._take_over(seen, body):
                break
        else:
            guard = self._guard()
            raise StoreError(
                f"Could not take the lock {self.path}: another run keeps taking it over ({guard} is held). "
                f"Wait and rerun; delete {guard} if no saldata run is starting on this output."
            )
        self._thread = threading.Thread(target=self._beat, name="saldata-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _guard(self) -> Path:
        return self.path.with_name(f"{LOCK_FILE}.takeover")

    def _take_over(self, seen: _Seen, body: bytes) -> bool:
        """Replace the stale lock ``seen`` with ours; True if done.

        Takers go one at a time through a guard file (created like the lock), so two runs that judged
        the same lock stale cannot both act on it: the second finds the guard, or, after it, a new lock
        that is not the one it judged. A guard left by a taker that died is itself stale, and removed.
        """
        guard = self._guard()
        if not _create(guard, body):
            held = _load(guard)
            if held is not None and is_stale(held.info(), self.stale_after):
                _remove_stale(guard, held, self.stale_after)
            else:
                time.sleep(_GUARD_WAIT_S)  # someone is taking over: look again at what it leaves
            return False
        try:
            now = _load(self.path)
            if now is None or not now.same_file(seen) or not _remove_stale(self.path, now, self.stale_after):
                return False  # released, taken over or revived since we judged it: judge again
            self.took_over = now.info()
            return _create(self.path, body)  # False only if a new run slipped into the gap; it then holds
        finally:
            if (held := _load(guard)) and held.record and held.record.get("token") == self.token:
                guard.unlink(missing_ok=True)

    def _refusal(self, seen: _Seen) -> str:
        return refusal(self.path, seen.info(), self.stale_after)

    def _ownership_problem(self, touch: bool) -> str | None:
        """None if the lock file is ours (then touched, if asked); else why this run must stop writing."""
        stop = "this run stops writing. Rerun the same command once"
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return f"The lock {self.path} was removed while this run held it; {stop} no other run is on this output."
        except OSError as e:
            return f"The lock {self.path} cannot be opened ({e.strerror}); {stop} it can be."
        try:
            record, problem = _parse(os.read(fd, _MAX_BYTES + 1))
            if record is None:
                return f"The lock {self.path} was replaced by an unreadable file ({problem}); {stop} no run is on it."
            if record.get("token") != self.token:
                return (
                    f"The lock {self.path} was taken by run {record['run_id']} (pid {record['pid']} on "
                    f"{record['host']}); {stop} that run ends."
                )
            if touch:
                os.utime(fd)  # the file just verified, not whatever is at the path by now
        except OSError as e:
            return f"The lock {self.path} cannot be read ({e.strerror}); {stop} it can be."
        finally:
            os.close(fd)
        return None

    def check(self) -> None:
        """Raise ``StoreError`` (one line) unless this run still owns its lock; one small read, so cheap
        enough before every commit. Once lost, always lost: another run may have written meanwhile.

        A check and the commit after it are two steps: a takeover during the commit (possible only if this
        run looked dead, i.e. stalled for ``stale_after``) is seen at the next check, not before."""
        if not self.lost and (problem := self._ownership_problem(touch=False)):
            self._lose(problem)
        if self.lost:
            raise StoreError(self._lost_reason)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if problem := self._ownership_problem(touch=True):
                self._lose(problem)
                print(f"saldata: {problem}", file=sys.stderr, flush=True)  # now, not at the next commit
                return  # never recreate the lock: another run may own the output now

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.heartbeat_s + 5)
        # Compare, then unlink: another run could take over between the two only if our lock looked stale
        # right then, i.e. this process stalled for stale_after at this line; that run would then lose its
        # lock and stop at its next check().
        if not self.lost and self._ownership_problem(touch=False) is None:
            self.path.unlink(missing_ok=True)


def output_lock(out, run_id: str, **options):
    """The lock for ``out``'s kind of location: this module's for a folder, ``object_lock``'s for a URL."""
    from saldata.storage.location import is_object

    if is_object(out):
        from saldata.storage.object_lock import ObjectLock

        return ObjectLock(out, run_id, **options)
    return OutputLock(out, run_id, **options)
