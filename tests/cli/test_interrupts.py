"""Ctrl-C, SIGTERM and a driver killed alone: one line, the right exit code, no orphan work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from saldata.storage.commits import read_commit_log
from tests.helpers import DEMO_ARGS, DEMO_SHARDS, assert_same_output, kill_session, run_cli, wait_for

pytestmark = pytest.mark.slow


def start_run(out):
    args = [sys.executable, "-m", "saldata.cli.main", "extract", *DEMO_ARGS, "--out", str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def records(out) -> set[str]:
    folder = out / "commits"
    return {p.name for p in folder.glob("shard-*.json")} if folder.is_dir() else set()


def session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return found


@pytest.mark.parametrize(
    ("signum", "code", "twice"),
    [
        (signal.SIGINT, 130, False),
        (signal.SIGTERM, 143, False),
        # `timeout -s INT` signals the driver, then its whole group: the clean-up must survive that.
        (signal.SIGINT, 130, True),
    ],
)
def test_a_signal_prints_one_line_and_leaves_nothing_running(tmp_path, signum, code, twice):
    out = tmp_path / "out"
    proc = start_run(out)
    try:
        wait_for(lambda: records(out) or proc.poll() is not None, timeout=240, what="a first commit")
        os.kill(proc.pid, signum)
        if twice:
            time.sleep(0.05)
            os.killpg(proc.pid, signum)
        _, stderr = proc.communicate(timeout=60)
        lines = stderr.strip().splitlines()
        assert proc.returncode == code, stderr
        committed = len(read_commit_log(out).committed)  # a commit cut by the signal is pending, not counted
        assert lines[-1] == (
            f"interrupted: {committed} of {DEMO_SHARDS} shards committed; rerun the same command to resume"
        )
        assert "Traceback" not in stderr and "(raylet)" not in stderr and "ray.kill" not in stderr
        assert "Unhandled error" not in stderr and "ERROR" not in stderr, stderr
        wait_for(lambda: not session_processes(proc.pid), timeout=10, what="Ray processes to end")
    finally:
        kill_session(proc.pid)


def test_a_driver_killed_alone_leaves_no_worker_and_no_later_commit(tmp_path, reference_run):
    out = tmp_path / "out"
    proc = start_run(out)
    try:
        wait_for(lambda: records(out) or proc.poll() is not None, timeout=240, what="a first commit")
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its Ray processes are not signalled
        proc.communicate(timeout=60)  # ends when every process holding its pipes has gone
        at_kill = records(out)
        wait_for(lambda: not session_processes(proc.pid), timeout=10, what="Ray processes to end")
        time.sleep(2)
        assert records(out) == at_kill, "a shard was committed after the driver died"
        assert len(at_kill) < DEMO_SHARDS
    finally:
        kill_session(proc.pid)
    rerun = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_same_output(out, reference_run)
