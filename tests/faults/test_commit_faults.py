"""Kill -9 and a full disk at every named point of store creation and of the commit protocol.

Each case runs the real storage code in a subprocess (``commit_scenario.py``), stops it at one
fault point, checks what a reader would see at that moment, reruns it, and compares every file
of the result byte for byte with an undisturbed run. RELIABILITY.md lists these cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zarr

from saldata.pipelines.verify import verify_output
from saldata.schemas.store import SHARD_ARRAYS
from saldata.storage.commits import read_commit_log
from tests.faults.commit_scenario import SHARD_SIZE
from tests.helpers import kill_session, wait_for

# (fault, how the faulted run ends). Each case is a few subprocess runs; the fast tier keeps one
# per kind (store creation, a half-moved commit, a full disk, a retry), the full suite all of them.
SLOW = pytest.mark.slow
KILLS = [
    pytest.param("store-array-created@attn_base=kill", marks=SLOW),  # while the store's arrays are being created
    "store-created=kill",  # store complete, before it is renamed into place
    pytest.param("store-array@hidden=kill", marks=SLOW),  # a shard half staged (some arrays written)
    pytest.param("commit-move@0=kill", marks=SLOW),  # commit record switched, no file moved yet
    "commit-move@4=kill",  # half the shard's files moved
    pytest.param("commit-move@9=kill", marks=SLOW),  # every file moved, record not yet final
]
DISK_FULL = [
    pytest.param("store-array-created@hidden=enospc", marks=SLOW),
    pytest.param("store-array@attn_highres=enospc", marks=SLOW),
    "commit-move@2=enospc",
]
RETRY_KILLS = [
    pytest.param("store-array@attn_base=kill", marks=SLOW),
    pytest.param("commit-move@0=kill", marks=SLOW),
    "commit-move@5=kill",
]


def scenario(out: Path, fault: str | None = None, retry: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SALDATA_FAULT"}
    if fault:
        env["SALDATA_FAULT"] = fault
    cmd = [sys.executable, "-m", "tests.faults.commit_scenario", str(out), *(["--retry"] if retry else [])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    out = tmp_path_factory.mktemp("undisturbed") / "out"
    assert scenario(out).returncode == 0
    retried = tmp_path_factory.mktemp("undisturbed-retry") / "out"
    assert scenario(retried).returncode == 0
    assert scenario(retried, retry=True).returncode == 0
    return tree_bytes(out), tree_bytes(retried)


def assert_readers_see_only_commits(out: Path) -> None:
    """What plain Parquet and saldata readers see at the moment of the fault."""
    if not (out / "features.zarr").exists():
        assert not (out / "commits").exists() or not read_commit_log(out).committed
        return
    log = read_commit_log(out)
    visible = (
        set(pq.read_table(out / "catalog" / "images").column("shard").to_pylist())
        if (out / "catalog" / "images").is_dir()
        else set()
    )
    assert visible <= set(log.committed) | set(log.pending)
    report = verify_output(out)
    assert not report.damaged and not report.stray, report


@pytest.mark.parametrize("fault", KILLS)
def test_kill_then_rerun_is_bitwise_the_undisturbed_output(tmp_path, undisturbed, fault):
    out = tmp_path / "out"
    killed = scenario(out, fault)
    assert killed.returncode == -9, killed.stderr
    assert_readers_see_only_commits(out)
    assert scenario(out).returncode == 0
    assert tree_bytes(out) == undisturbed[0]


@pytest.mark.parametrize("fault", DISK_FULL)
def test_disk_full_then_rerun_is_bitwise_the_undisturbed_output(tmp_path, undisturbed, fault):
    out = tmp_path / "out"
    failed = scenario(out, fault)
    assert failed.returncode == 1 and "No space left on device" in failed.stderr
    assert_readers_see_only_commits(out)
    assert scenario(out).returncode == 0
    assert tree_bytes(out) == undisturbed[0]


@pytest.mark.parametrize("fault", RETRY_KILLS)
def test_kill_inside_a_retry_leaves_the_old_shard_or_the_new_one(tmp_path, undisturbed, fault):
    out = tmp_path / "out"
    assert scenario(out).returncode == 0
    killed = scenario(out, fault, retry=True)
    assert killed.returncode == -9, killed.stderr
    log = read_commit_log(out)
    if 1 in log.committed:  # killed before the switch: the old shard, whole
        assert log.committed[1].run_id == "run"
        assert_readers_see_only_commits(out)
    else:  # after it: the new shard is the truth, and its commit is finished by the rerun
        assert log.pending[1].run_id == "retry"
    assert scenario(out, retry=True).returncode == 0
    assert tree_bytes(out) == undisturbed[1]
    assert verify_output(out).intact


# The files one scenario commit moves: a Zarr shard file per array on the image axis, then the
# images, tokens and words files. The fast tier holds the commit after its first move and after
# its first catalog file; the full suite after every move.
MOVES = len(SHARD_ARRAYS) + 3
HELD = [k if k in (0, len(SHARD_ARRAYS)) else pytest.param(k, marks=SLOW) for k in range(MOVES)]


@pytest.mark.parametrize("moved", HELD)
def test_a_commit_held_between_moves_shows_plain_readers_no_row_without_its_arrays(tmp_path, moved):
    """A commit held after its move ``moved`` (what a kill -9 there leaves until the next run): every
    row plain pyarrow reads from catalog/ has its arrays in place for plain zarr. Arrays move first,
    catalog files last."""
    out, marker = tmp_path / "out", tmp_path / "held"
    env = {**os.environ, "SALDATA_FAULT": f"commit-move@{moved}=hang", "SALDATA_FAULT_MARKER": str(marker)}
    cmd = [sys.executable, "-m", "tests.faults.commit_scenario", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).parents[2], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=120, what="the held commit")
        assert proc.poll() is None, "the scenario ended before its commit fault"
        images = out / "catalog" / "images"
        rows = pq.read_table(images).to_pylist() if images.is_dir() else []
        group = zarr.open_group(out / "features.zarr", mode="r")
        for row in rows:
            idx = row["idx"]
            for spec in SHARD_ARRAYS:
                key = group[spec.name].metadata.encode_chunk_key(
                    (idx // SHARD_SIZE,) + (0,) * (group[spec.name].ndim - 1)
                )
                assert (out / "features.zarr" / spec.name / key).is_file(), f"row {idx} is read, its {spec.name} is not"
            assert (int(group["n_tokens"][idx]), str(group["image_id"][idx])) == (row["n_tokens"], row["image_id"])
        if moved >= len(SHARD_ARRAYS):  # the catalog's turn: the shard's rows are there to read
            assert [r["idx"] for r in rows] == list(range(SHARD_SIZE))
    finally:
        kill_session(proc.pid)
        proc.wait()
