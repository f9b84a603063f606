"""Helpers for tests that compare outputs and disturb processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import zarr

from saldata.schemas.store import ARRAYS

TIMING_COLUMNS = ("load_s", "model_s")

# One set of run settings shared by every test that compares a disturbed run with an undisturbed one:
# the same shards and batches give bitwise-identical arrays.
DEMO_ARGS = [
    "--dataset",
    "demo",
    "--model",
    "tiny-random",
    "--max-new-tokens",
    "4",
    "--shard-size",
    "1",
    "--batch-size",
    "1",
]
DEMO_SHARDS = 6


def run_cli(args, timeout=300, prefix=None, **kwargs):
    """Run ``saldata ARGS`` in a fresh process; ``prefix`` may wrap the command (e.g. to drop privileges)."""
    cmd = [sys.executable, "-m", "saldata.cli.main", *map(str, args)]
    return subprocess.run(prefix(cmd) if prefix else cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def assert_same_output(out: Path, reference: Path) -> None:
    """Bitwise-equal arrays and equal catalog rows (timings aside)."""
    got, want = zarr.open_group(out / "features.zarr", mode="r"), zarr.open_group(reference / "features.zarr", mode="r")
    for spec in ARRAYS:
        np.testing.assert_array_equal(got[spec.name][:], want[spec.name][:], err_msg=spec.name)
    for table in ("images", "tokens"):
        a = pq.read_table(out / "catalog" / table).drop_columns([c for c in TIMING_COLUMNS if table == "images"])
        b = pq.read_table(reference / "catalog" / table).drop_columns([c for c in TIMING_COLUMNS if table == "images"])
        keys = [("idx", "ascending")] + ([("position", "ascending")] if table == "tokens" else [])
        a_rows, b_rows = a.sort_by(keys).to_pylist(), b.sort_by(keys).to_pylist()
        for row in a_rows + b_rows:
            row.pop("source_path", None)  # absolute paths may differ between caches
        assert a_rows == b_rows, table


def committed(out: Path) -> list[Path]:
    folder = out / "catalog" / "images"
    return sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_session(sid: int) -> None:
    """SIGKILL every process left in a session (what a batch scheduler does to a job)."""
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.pid != os.getpid():
                proc.send_signal(signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue


def processes_named(fragment: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if fragment in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found
