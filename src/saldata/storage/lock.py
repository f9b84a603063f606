"""One run per output directory, with stale-lock detection for killed runs.

The lock file holds the owner's host, pid and run id; the owner touches it every few seconds
(a heartbeat). A lock is stale when its owner is on this host and its pid is gone, or when
its heartbeat is older than ``stale_after`` seconds (an owner on another node that died).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from saldata.errors import StoreError

LOCK_FILE = ".saldata.lock"
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(out: Path) -> dict | None:
    try:
        info = json.loads((Path(out) / LOCK_FILE).read_text())
        info["heartbeat_age_s"] = time.time() - (Path(out) / LOCK_FILE).stat().st_mtime
        return info
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_stale(info: dict, stale_after: float = STALE_AFTER_S) -> bool:
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return info["heartbeat_age_s"] > stale_after


class OutputLock:
    """Context manager held for the whole run; refuses a second live run on the same output."""

    def __init__(self, out: Path, run_id: str, stale_after: float = STALE_AFTER_S):
        self.path = Path(out) / LOCK_FILE
        self.run_id = run_id
        self.stale_after = stale_after
        self.took_over: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id, "started": time.time()}
        )
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(body)
            break
        else:
            raise StoreError(f"Could not take the lock {self.path}; another run is starting on this output.")
        self._thread = threading.Thread(target=self._beat, name="saldata-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _handle_existing(self) -> None:
        info = read_lock(self.path.parent)
        if info is None:  # vanished or half-written by a run that died at once
            self.path.unlink(missing_ok=True)
            return
        if not is_stale(info, self.stale_after):
            raise StoreError(
                f"{self.path.parent} is in use by run {info.get('run_id')} (pid {info.get('pid')} on "
                f"{info.get('host')}, heartbeat {info['heartbeat_age_s']:.0f} s ago). Wait for it to finish; if "
                f"that job is dead, delete {self.path}."
            )
        self.took_over = info
        self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1)
        self.path.unlink(missing_ok=True)
