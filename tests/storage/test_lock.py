"""One live run per output; a lock left by a dead run is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from saldata.errors import StoreError
from saldata.storage.lock import LOCK_FILE, OutputLock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_run_on_a_live_output_is_refused(tmp_path):
    with OutputLock(tmp_path, "first"):
        with pytest.raises(StoreError) as err, OutputLock(tmp_path, "second"):
            pass
        assert "in use by run first" in str(err.value) and str(os.getpid()) in str(err.value)
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "run_id": "old"}))
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "old"
        assert json.loads((tmp_path / LOCK_FILE).read_text())["run_id"] == "new"


def test_lock_from_another_host_goes_stale_when_its_heartbeat_stops(tmp_path):
    path = tmp_path / LOCK_FILE
    path.write_text(json.dumps({"host": "other-node", "pid": 1, "run_id": "remote"}))
    with pytest.raises(StoreError), OutputLock(tmp_path, "new"):
        pass
    old = time.time() - 3600
    os.utime(path, (old, old))
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "remote"
