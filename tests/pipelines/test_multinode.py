"""A real two-node Ray cluster on loopback: the node running the model dies mid-run.

The head (127.0.0.3, where the driver runs) has no CPUs, so the model actor and every task
must run on the worker node (127.0.0.2). That node is killed after the first commit, a
replacement node (127.0.0.4) joins, and the job itself must finish (exit 0, no rerun) with a
store equal to an undisturbed run's and the retried shard in its journal. 127.0.0.1 is avoided
because Ray rewrites it to the host's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import DEMO_ARGS, DEMO_SHARDS, assert_same_output, committed, wait_for

HEAD, WORKER, REPLACEMENT = "127.0.0.3", "127.0.0.2", "127.0.0.4"
RAY = shutil.which("ray") or str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD, 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self):
        self.port = _free_port()
        self.address = f"{HEAD}:{self.port}"
        # Ray >= 2.5x turns on token auth for `ray start --head`; this private test cluster opts out.
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)

    def _ray(self, *args):
        proc = subprocess.run(
            [RAY, "start", *args, "--disable-usage-stats"], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def start(self):
        self._ray(
            "--head", f"--node-ip-address={HEAD}", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false"
        )
        self.add_node(WORKER)

    def add_node(self, ip: str):
        self._ray(f"--address={self.address}", f"--node-ip-address={ip}", "--num-cpus=2")

    def node_processes(self, ip: str) -> set[psutil.Process]:
        found = set()
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if ip in cmd or (ip == HEAD and str(self.port) in cmd):
                found.add(proc)
                with contextlib.suppress(psutil.NoSuchProcess):
                    found.update(proc.children(recursive=True))
        return found

    def kill_node(self, ip: str):
        for proc in self.node_processes(ip):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()

    def shutdown(self):
        for ip in (WORKER, REPLACEMENT, HEAD):
            self.kill_node(ip)


@pytest.fixture
def cluster():
    c = LoopbackCluster()
    try:
        c.start()
        yield c
    finally:
        c.shutdown()


@pytest.mark.slow
def test_worker_node_lost_mid_run_job_completes(cluster, tmp_path, reference_run):
    """README: a lost node's work is rescheduled and its shard retried; the job itself finishes (exit 0).

    The retry must be visible in the run's journal: an event ``{"event": "retry", "shard": N, ...}``
    for a shard that was not committed when the node died, before that shard's one ``commit``.
    """
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "saldata.cli.main",
        "extract",
        *DEMO_ARGS,
        "--out",
        str(out),
        "--address",
        cluster.address,
    ]
    job = subprocess.Popen(args, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: committed(out) or job.poll() is not None, timeout=240, what="a first commit")
        assert job.poll() is None, job.stdout.read()[-3000:]
        cluster.kill_node(WORKER)
        done_before_loss = {int(p.stem.split("-")[1]) for p in committed(out)}
        assert len(done_before_loss) < DEMO_SHARDS
        cluster.add_node(REPLACEMENT)
        log, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, f"the job did not survive losing its worker node:\n{log[-3000:]}"
    assert_same_output(out, reference_run)

    (journal,) = (out / "journal").glob("*.jsonl")  # one run: nothing was rerun by hand
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["shards"] == list(range(DEMO_SHARDS))
    commits = [e["shard"] for e in events if e["event"] == "commit"]
    assert sorted(commits) == list(range(DEMO_SHARDS)), f"each shard commits exactly once: {commits}"
    retries = [(i, e) for i, e in enumerate(events) if e["event"] == "retry"]
    assert retries, f"no retried shard in the journal after losing the node: {[e['event'] for e in events]}"
    for position, event in retries:
        shard = event["shard"]
        assert shard not in done_before_loss, f"shard {shard} was committed before the loss, yet retried"
        later = [e for e in events[position + 1 :] if e["event"] == "commit" and e["shard"] == shard]
        assert later, f"retried shard {shard} never committed after its retry"
