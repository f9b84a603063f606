"""Extraction into a real local S3 server (moto): the output equals a local-disk run's, bit for bit.

Every check reads the objects back with plain tools (s3fs, Zarr's FsspecStore, pyarrow) or
saldata's own commands on the URL; the comparison is against the same pipeline on a local disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from zarr.storage import FsspecStore

import saldata
from saldata.schemas.store import ARRAYS
from tests.helpers import (
    DEMO_ARGS,
    DEMO_SHARDS,
    TABLE_KEYS,
    TIMING_COLUMNS,
    assert_same_bytes,
    assert_same_output,
    kill_session,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]


def _key(url: str) -> str:
    return url.removeprefix("s3://")


def _rows(table) -> list[dict]:
    if "load_s" in table.column_names:
        table = table.drop_columns(list(TIMING_COLUMNS))
    rows = table.to_pylist()
    for row in rows:
        row.pop("source_path", None)
    return rows


def _sorted_rows(table, name: str) -> list[dict]:
    return _rows(table.sort_by([(k, "ascending") for k in TABLE_KEYS[name]]))


def assert_same_store_files(fs, url: str, local: Path) -> None:
    """Every Zarr file under ``url``/features.zarr equals the local disk's byte for byte, and no file
    is on one side only. The root metadata differs by its ``created`` time and nothing else."""
    root = f"{_key(url)}/features.zarr"
    remote = {key[len(root) + 1 :] for key in fs.find(root)}
    here = {str(p.relative_to(local / "features.zarr")) for p in (local / "features.zarr").rglob("*") if p.is_file()}
    assert remote == here, f"only on S3: {sorted(remote - here)}; only on disk: {sorted(here - remote)}"
    for rel in sorted(remote - {"zarr.json"}):
        assert fs.cat_file(f"{root}/{rel}") == (local / "features.zarr" / rel).read_bytes(), rel
    attrs = [json.loads(data)["attributes"] for data in (fs.cat_file(f"{root}/zarr.json"),
             (local / "features.zarr" / "zarr.json").read_bytes())]  # fmt: skip
    for a in attrs:
        a.pop("created")
    assert attrs[0] == attrs[1]


def assert_same_as_local(fs, url: str, local: Path) -> None:
    """Plain zarr (FsspecStore) and plain pyarrow (through s3fs) read what the local run holds."""
    assert_same_store_files(fs, url, local)
    group = zarr.open_group(FsspecStore.from_url(f"{url}/features.zarr", read_only=True), mode="r")
    want = zarr.open_group(local / "features.zarr", mode="r")
    for spec in ARRAYS:
        assert_same_bytes(group[spec.name][:], want[spec.name][:], spec.name)
    for name in TABLE_KEYS:
        got = pq.read_table(f"{_key(url)}/catalog/{name}", filesystem=fs)
        assert _sorted_rows(got, name) == _sorted_rows(pq.read_table(local / "catalog" / name), name), name


def test_ray_free_build_into_s3_equals_the_local_disk_build(s3_server, s3_demo, demo_output_ray_free):
    fs = s3_server.filesystem()
    assert_same_as_local(fs, s3_demo, demo_output_ray_free)
    records = [key for key in fs.find(f"{_key(s3_demo)}/commits") if key.rsplit("/", 1)[1].startswith("shard-")]
    assert len(records) == 2 and not any(json.loads(fs.cat_file(r))["pending"] for r in records)
    assert fs.exists(f"{_key(s3_demo)}/commits/store.json")
    assert not fs.exists(f"{_key(s3_demo)}/staging") or not fs.find(f"{_key(s3_demo)}/staging")
    assert not fs.exists(f"{_key(s3_demo)}/.saldata.lock")  # released


def test_readers_verify_query_evaluate_and_export_work_on_the_url(s3_demo, demo_output_ray_free, tmp_path):
    remote, local = saldata.open(s3_demo), saldata.open(demo_output_ray_free)
    assert _rows(remote.images) == _rows(local.images)
    idx = remote.images["idx"][0].as_py()
    for layer in remote.layers.layers:
        got, want = remote.word_maps(idx, layer=layer), local.word_maps(idx, layer=layer)
        assert got[0] == want[0] and np.array_equal(got[1], want[1])
    sql = "SELECT w.word, count(*) AS n FROM words w JOIN images i USING (idx) GROUP BY 1 ORDER BY 2 DESC, 1"
    assert remote.sql(sql).to_pylist() == local.sql(sql).to_pylist()

    verify = run_cli(["verify", s3_demo])
    assert verify.returncode == 0 and "2 committed shards checked" in verify.stdout and "intact" in verify.stdout
    query = run_cli(["catalog", "query", s3_demo, "SELECT count(*) AS n FROM tokens", "-f", "csv"])
    assert query.returncode == 0 and query.stdout.split() == ["n", str(local.tokens.num_rows)], query.stderr

    for out in (s3_demo, demo_output_ray_free):
        evaluated = run_cli(["evaluate", str(out), "--layers", "all"])
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = [saldata.open(o).path / "eval" / "metrics.parquet" for o in (s3_demo, demo_output_ray_free)]
    remote_metrics = pq.read_table(metrics[0].open("rb"))
    assert remote_metrics.equals(pq.read_table(metrics[1]))
    assert (saldata.open(s3_demo).path / "eval" / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for out, dest in ((s3_demo, tmp_path / "from-s3"), (demo_output_ray_free, tmp_path / "from-disk")):
        exported = run_cli(["export", str(out), str(dest), "--format", "language-att"])
        assert exported.returncode == 0, exported.stderr[-2000:]
    files = sorted(p.relative_to(tmp_path / "from-disk") for p in (tmp_path / "from-disk").rglob("*.npy"))
    assert files
    for rel in files:
        assert (tmp_path / "from-s3" / rel).read_bytes() == (tmp_path / "from-disk" / rel).read_bytes(), rel


def test_bad_urls_and_unreachable_stores_are_one_line(s3_server, tmp_path):
    from tests.s3_server import free_port

    missing = run_cli(["extract", *DEMO_ARGS, "--out", "s3://no-such-bucket-here/out"])
    assert missing.returncode == 2 and "the bucket no-such-bucket-here does not exist" in missing.stderr
    nowhere = f"endpoint_url=http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = "the store cannot be reached"
    for command, why in (
        (["extract", *DEMO_ARGS, "--out", "s3://b/out", "--storage-option", nowhere], unreachable),
        (["status", "s3://b/out", "--storage-option", nowhere], unreachable),
        (["verify", "s3://b/out", "--storage-option", nowhere], unreachable),
        (["catalog", "query", "s3://b/out", "SELECT 1", "--storage-option", nowhere], unreachable),
        (["catalog", "query", "s3://no-such-bucket-here/out", "SELECT 1"], "the bucket no-such-bucket-here does not"),
        (["verify", "s3://x/out", "--storage-option", "endpoint_url"], "is not KEY=VALUE"),
        (["status", "s3://x/out", "--storage-option", "endpoint_ur=http://h"], "endpoint_ur"),
        (["verify", "gs://bucket/out"], "install gcsfs"),  # not installed here
    ):
        proc = run_cli(command)
        assert proc.returncode in (1, 2), (command, proc.stdout)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and why in lines[0], (command, proc.stderr[-2000:])


def _commits(fs, url: str) -> list[str]:
    """The shards' commit records (not the pending markers of commits in flight, nor the store record)."""
    folder = f"{_key(url)}/commits"
    keys = fs.ls(folder, detail=False) if fs.exists(folder) else []
    return sorted(
        key for key in keys if key.rsplit("/", 1)[1].startswith("shard-") and not key.endswith(".pending.json")
    )


def test_sigkill_then_rerun_into_s3_equals_the_local_disk_run(s3_server, s3_out, reference_run, tmp_path):
    """kill -9 mid-run, a second run refused while the first is alive, the rerun resumes: bitwise
    the uninterrupted local-disk run (tests/cli/test_kill9.py, on a URL)."""
    fs = s3_server.filesystem()
    args = [sys.executable, "-m", "saldata.cli.main", "extract", *DEMO_ARGS, "--out", s3_out]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: fs.exists(f"{_key(s3_out)}/.saldata.lock") or proc.poll() is not None, 120, what="the lock")
        second = run_cli(["extract", *DEMO_ARGS, "--out", s3_out])
        assert second.returncode == 2 and f"{s3_out} is in use by run" in second.stderr, second.stderr[-2000:]
        wait_for(lambda: _commits(fs, s3_out) or proc.poll() is not None, timeout=240, what="a first commit")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_session(proc.pid)
    before = {key: fs.info(key)["ETag"] for key in _commits(fs, s3_out)}
    assert 1 <= len(before) < DEMO_SHARDS, f"kill landed outside the run: {len(before)} shards committed"
    assert fs.exists(f"{_key(s3_out)}/.saldata.lock")  # left by the killed run: its heartbeat stops

    rerun = run_cli(["extract", *DEMO_ARGS, "--out", s3_out], timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming:" in rerun.stderr
    assert_same_as_local(fs, s3_out, reference_run)
    assert {key: fs.info(key)["ETag"] for key in before} == before  # committed shards were not rewritten
    assert not any(tmp_path.iterdir()), "the run wrote into its working folder"
    local = tmp_path / "downloaded"
    fs.get(f"{_key(s3_out)}/", str(local), recursive=True)
    assert_same_output(local, reference_run)


def test_a_kill_inside_an_object_commit_is_rolled_forward_from_its_marker(s3_server, s3_out, s3_demo, tmp_path):
    """Killed after the first staged objects were copied into place, before the record: readers see
    no row of the shard (its pending marker outranks everything), verify calls it pending, and the
    rerun finishes the commit from the staged objects (not redoing the shard), ending equal to an
    undisturbed build."""
    fs = s3_server.filesystem()
    marker = tmp_path / "fault"
    env = {**os.environ, "SALDATA_FAULT": "commit-move@1=hang", "SALDATA_FAULT_MARKER": str(marker)}
    cmd = [sys.executable, "-m", "tests.ray_free_run", s3_out]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=120, what="the commit fault")
        assert proc.poll() is None, "the build ended before its commit fault"
        assert fs.exists(f"{_key(s3_out)}/commits/shard-00000.pending.json")
        assert not fs.exists(f"{_key(s3_out)}/commits/shard-00000.json")
        assert not fs.exists(f"{_key(s3_out)}/catalog/images/shard-00000.parquet")  # catalog objects go last
        assert saldata.open(s3_out).images.num_rows == 0
        verify = run_cli(["verify", s3_out])
        assert "0 committed shards checked" in verify.stdout and "pending  shard 0" in verify.stdout, verify.stdout
    finally:
        kill_session(proc.pid)
        proc.wait()  # reaped: a zombie's pid would still look alive
    # Take the dead run's lock over without waiting a minute: its pid is gone on this host.
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (journal,) = [key for key in fs.find(f"{_key(s3_out)}/journal") if key.endswith(".jsonl")]
    start = json.loads(fs.cat_file(journal).decode().splitlines()[0])
    assert start["event"] == "start" and start["shards"] == [1], "shard 0 was redone, not rolled forward"
    assert not fs.exists(f"{_key(s3_out)}/commits/shard-00000.pending.json")
    local = tmp_path / "undisturbed"
    fs.get(f"{_key(s3_demo)}/", str(local), recursive=True)
    assert_same_as_local(fs, s3_out, local)
    assert run_cli(["verify", s3_out]).returncode == 0


def test_a_damaged_shard_whose_metadata_was_changed_too_is_repaired_on_s3(s3_server, s3_out, s3_demo, tmp_path):
    """The root attribute layers edited ([0, 1] -> [1, 0]) and a byte flipped in shard 1's hidden
    file: verify names the metadata file; the rerun restores it from commits/store.json (which vouches
    for the settings the store was made with, so the edit is not taken for other ones) and redoes
    shard 1 alone, ending equal to an undisturbed build."""
    fs = s3_server.filesystem()
    source, target = _key(s3_demo), _key(s3_out)
    for key in fs.find(source):
        if not key.startswith(f"{source}/journal/"):
            fs.copy(key, target + key[len(source) :])
    root = f"{target}/features.zarr/zarr.json"
    meta = json.loads(fs.cat_file(root))
    assert meta["attributes"]["layers"] == [0, 1]
    meta["attributes"]["layers"] = [1, 0]
    fs.pipe_file(root, json.dumps(meta, indent=2).encode())
    record = json.loads(fs.cat_file(f"{target}/commits/shard-00001.json"))
    (hidden,) = [rel for rel, digest in record["files"].items() if rel.startswith("features.zarr/hidden/") and digest]
    data = bytearray(fs.cat_file(f"{target}/{hidden}"))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(f"{target}/{hidden}", bytes(data))

    verify = run_cli(["verify", s3_out])
    assert verify.returncode == 1 and f"{s3_out}/features.zarr/zarr.json was changed" in verify.stderr, verify.stderr
    rerun = subprocess.run([sys.executable, "-m", "tests.ray_free_run", s3_out], cwd=REPO, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (journal,) = [key for key in fs.find(f"{target}/journal") if key.endswith(".jsonl")]
    start = json.loads(fs.cat_file(journal).decode().splitlines()[0])
    assert start["event"] == "start" and start["shards"] == [1], "not exactly the damaged shard was redone"
    assert fs.cat_file(root) == fs.cat_file(f"{source}/features.zarr/zarr.json")
    local = tmp_path / "undisturbed"
    fs.get(f"{source}/", str(local), recursive=True)
    assert_same_as_local(fs, s3_out, local)
    assert run_cli(["verify", s3_out]).returncode == 0


def test_worker_node_loss_on_a_two_node_cluster_writing_to_s3(s3_out, s3_server, reference_run, tmp_path):
    """Done-when of the object-store issue: a two-node loopback Ray cluster whose nodes share no
    directory extracts into S3, loses its worker node mid-run, finishes on a replacement, and the
    output equals the local-disk run's bitwise."""
    from tests.pipelines.test_multinode import REPLACEMENT, WORKER, LoopbackCluster

    fs = s3_server.filesystem()
    cluster = LoopbackCluster()  # its environment carries the AWS variables of the s3_server fixture
    try:
        cluster.start()
        args = [sys.executable, "-m", "saldata.cli.main", "extract", *DEMO_ARGS, "--out", s3_out,
                "--address", cluster.address]  # fmt: skip
        job = subprocess.Popen(args, env=cluster.env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            wait_for(lambda: _commits(fs, s3_out) or job.poll() is not None, timeout=240, what="a first commit")
            assert job.poll() is None, job.stdout.read()[-3000:]
            cluster.kill_node(WORKER)
            done_before = len(_commits(fs, s3_out))
            assert done_before < DEMO_SHARDS
            cluster.add_node(REPLACEMENT)
            log, _ = job.communicate(timeout=300)
        finally:
            if job.poll() is None:
                job.kill()
    finally:
        cluster.shutdown()
    assert job.returncode == 0, f"the job did not survive losing its worker node:\n{log[-3000:]}"
    assert_same_as_local(fs, s3_out, reference_run)
    (journal,) = [key for key in fs.find(f"{_key(s3_out)}/journal") if key.endswith(".jsonl")]
    events = [json.loads(line) for line in fs.cat_file(journal).decode().splitlines()]
    assert any(e["event"] == "retry" for e in events), [e["event"] for e in events]
    assert sorted(e["shard"] for e in events if e["event"] == "commit") == list(range(DEMO_SHARDS))
    assert not any(tmp_path.iterdir()), "the driver wrote into its working folder"


def test_retry_failed_on_s3_replaces_a_committed_shard_whole(ray_local, s3_server, s3_out, tmp_path):
    """--retry-failed rewrites committed shards on S3: old record out first, new files in, new record
    last; the done rows stay byte for byte. The endpoint and keys travel as storage options (the
    session's Ray may have started before the S3 variables were set)."""
    from PIL import Image

    from saldata.pipelines.extract import plan_run, run_extraction
    from saldata.pipelines.verify import verify_output
    from saldata.storage.location import as_out
    from tests.pipelines.test_resume import folder_config, make_folder_with_broken

    root = make_folder_with_broken(tmp_path / "images")
    options = {"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing"}
    out = as_out(s3_out, options)
    config = folder_config(root, out)
    first = run_extraction(plan_run(config))
    assert (first.done, first.failed) == (3, 2)
    before = saldata.open(out).group["attn_highres"][:]
    Image.new("RGB", (80, 60), (9, 9, 9)).save(root / "d.jpg", format="JPEG")  # repaired
    retried = run_extraction(plan_run(config), retry_failed=True)
    assert (retried.processed, retried.done, retried.failed) == (2, 1, 1)
    after = saldata.open(out)
    assert [r["status"] for r in after.images.sort_by("idx").to_pylist()] == ["done"] * 4 + ["failed"]
    stored = after.group["attn_highres"][:]
    np.testing.assert_array_equal(stored[:3], before[:3])
    assert stored[3].any() and not stored[4].any()
    assert sorted(set(after.tokens["idx"].to_pylist())) == [0, 1, 2, 3]
    assert verify_output(out).intact
