"""kill -9 anywhere, rerun, same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.helpers import DEMO_ARGS, DEMO_SHARDS, assert_same_output, committed, kill_session, run_cli, wait_for


def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path, reference_run):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "saldata.cli.main", "extract", *DEMO_ARGS, "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: committed(out) or proc.poll() is not None, timeout=240, what="a first commit")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_session(proc.pid)
    before = {p.name: p.stat().st_mtime_ns for p in committed(out)}
    assert 1 <= len(before) < DEMO_SHARDS, f"kill landed outside the run: {len(before)} shards committed"
    assert (out / ".saldata.lock").exists()  # left behind by the killed run, must be taken over

    rerun = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming: {len(before)} shards already committed" in rerun.stderr

    assert_same_output(out, reference_run)
    assert {p.name: p.stat().st_mtime_ns for p in committed(out) if p.name in before} == before
    journals = sorted((out / "journal").glob("*.jsonl"))
    assert len(journals) == 2
    second = [json.loads(line) for line in journals[-1].read_text().splitlines()]
    processed = set(second[0]["shards"]) | {e["shard"] for e in second if e["event"] == "commit"}
    committed_by_first = {int(name.split("-")[1].split(".")[0]) for name in before}
    assert processed.isdisjoint(committed_by_first)
    assert processed | committed_by_first == set(range(DEMO_SHARDS))
