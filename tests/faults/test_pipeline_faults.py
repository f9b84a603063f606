"""The real pipeline killed (kill -9 of the whole job) or out of disk at named points, one after another.

One output goes through a chain of disturbed runs of the same command, each stopped at a
different point; the run after them must end bitwise equal to an undisturbed run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import DEMO_ARGS, assert_same_output, kill_session, run_cli, wait_for

pytestmark = pytest.mark.slow

# Each run costs a Ray start and a model load; the cheaper protocol-level cases, one per point,
# are in test_commit_faults.py.
CHAIN = [
    ("store-created=hang", "store complete, not yet in place"),
    ("shard-staged@2=hang", "a shard's files staged, not committed"),
    ("commit-move@3=hang", "inside a commit, some files moved"),
]


def run_until_fault(out, fault: str, marker) -> None:
    env = {**os.environ, "SALDATA_FAULT": fault, "SALDATA_FAULT_MARKER": str(marker)}
    args = [sys.executable, "-m", "saldata.cli.main", "extract", *DEMO_ARGS, "--out", str(out)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=240, what=f"fault {fault}")
        assert proc.poll() is None, f"the run ended before reaching {fault}: {proc.stderr.read()[-2000:]}"
    finally:
        kill_session(proc.pid)
        proc.wait()
        proc.stderr.close()
    marker.unlink()


def test_a_chain_of_kills_and_a_full_disk_ends_bitwise_undisturbed(tmp_path, reference_run):
    out = tmp_path / "out"
    for fault, _ in CHAIN:
        run_until_fault(out, fault, tmp_path / "reached")
    env = {**os.environ, "SALDATA_FAULT": "store-array@attn_highres=enospc"}
    full = run_cli(["extract", *DEMO_ARGS, "--out", str(out)], env=env)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    error = [line for line in full.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "No space left on device" in error[0] and "free on the disk of" in error[0], error
    assert "attn_highres" in error[0] and "uncommitted" in error[0]
    # The console has one line; the worker's traceback is kept in that run's journal.
    reports = [
        json.loads(line)
        for path in (out / "journal").glob("*.jsonl")
        for line in path.read_text().splitlines()
        if '"event": "error"' in line
    ]
    assert reports and "stage_shard" in reports[-1]["report"] and 'File "' in reports[-1]["report"]
    assert "Ray's full report: " in error[0] and 'File "' not in full.stderr

    final = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert final.returncode == 0, final.stderr[-3000:]
    assert_same_output(out, reference_run)
    verify = run_cli(["verify", out])
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout
    assert not any((out / "staging").iterdir())


def test_a_full_disk_that_also_stops_the_journal_is_still_one_line(tmp_path):
    """The error handler keeps Ray's report in the journal; on a full disk that write fails too, and is let go."""
    out = tmp_path / "out"
    env = {**os.environ, "SALDATA_FAULT": "store-array@attn_highres=enospc,journal-write@error=enospc"}
    full = run_cli(["extract", *DEMO_ARGS, "--out", str(out)], env=env)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    error = [line for line in full.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "No space left on device" in error[0] and "attn_highres" in error[0], error
    assert "Ray's full report" not in error[0]  # it could not be kept: no pointer to a report that is not there
    assert not any('"event": "error"' in p.read_text() for p in (out / "journal").glob("*.jsonl"))
