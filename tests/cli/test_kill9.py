"""kill -9 anywhere, rerun, same result: every array byte for byte, every catalog table row for row."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from saldata.cli.progress import plural
from tests.helpers import (
    BATCHED_SHARDS,
    DEMO_ARGS,
    DEMO_SHARDS,
    assert_same_output,
    batched_args,
    committed,
    kill_session,
    run_cli,
    wait_for,
)


@pytest.fixture(params=["one-image-shards", "batched-shards"])
def run_setup(request):
    """(CLI arguments, the uninterrupted run's output, shard count)."""
    if request.param == "one-image-shards":
        return DEMO_ARGS, request.getfixturevalue("reference_run"), DEMO_SHARDS
    folder = request.getfixturevalue("batched_images")
    return batched_args(folder), request.getfixturevalue("batched_reference_run"), BATCHED_SHARDS


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path, run_setup):
    run_args, reference, n_shards = run_setup
    # The comparison covers every table: the reference must have rows in each.
    for table in ("images", "tokens", "words"):
        assert pq.read_table(reference / "catalog" / table).num_rows > 0, table
    out = tmp_path / "out"
    args = [sys.executable, "-m", "saldata.cli.main", "extract", *run_args, "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: committed(out) or proc.poll() is not None, timeout=240, what="a first commit")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_session(proc.pid)
    before = {p.name: p.stat().st_mtime_ns for p in committed(out)}
    assert 1 <= len(before) < n_shards, f"kill landed outside the run: {len(before)} shards committed"
    assert (out / ".saldata.lock").exists()  # left behind by the killed run, must be taken over

    rerun = run_cli(["extract", *run_args, "--out", str(out)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # A kill inside a commit (record written, files not all moved) leaves that shard to be finished
    # by the rerun, which then counts it as committed too: the images file may not be in place yet.
    finished = re.search(r"Finished the commits a killed run left half done: shards ([\d, ]+)\.", rerun.stderr)
    finished_shards = {int(s) for s in finished.group(1).split(", ")} if finished else set()
    before_shards = {int(name.split("-")[1].split(".")[0]) for name in before}
    resumed = len(before_shards | finished_shards)
    assert f"Resuming: {plural(resumed, 'shard')} already committed" in rerun.stderr, rerun.stderr

    assert_same_output(out, reference)
    assert {p.name: p.stat().st_mtime_ns for p in committed(out) if p.name in before} == before
    journals = sorted((out / "journal").glob("*.jsonl"))
    assert len(journals) == 2
    second = [json.loads(line) for line in journals[-1].read_text().splitlines()]
    processed = set(second[0]["shards"]) | {e["shard"] for e in second if e["event"] == "commit"}
    committed_by_first = before_shards | finished_shards
    assert processed.isdisjoint(committed_by_first)
    assert processed | committed_by_first == set(range(n_shards))
