"""Live progress: images counted as the model finishes them, the bar and status agreeing, a quick no-op."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.cli.progress import EtaColumn, RateColumn
from saldata.pipelines.live_progress import RunProgress, write_progress
from saldata.storage.lock import OutputLock
from tests.helpers import DEMO_ARGS, run_cli, wait_for


@pytest.mark.slow
def test_status_counts_images_as_the_model_finishes_them_before_any_commit(tmp_path, tiny_model_dir, demo_root):
    out = tmp_path / "out"
    # One shard of every image: nothing commits until the model has done them all.
    args = ["extract", "--dataset", "demo", "--model", "tiny-random", "--max-new-tokens", "24", "--shard-size", "8"]
    cmd = [sys.executable, "-m", "saldata.cli.main", *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []

    def counted_before_commit() -> bool:
        status = run_cli(["status", str(out)])
        seen.append(status.stdout)
        live = re.search(r"this run: (\d+) of 6 images through the model, committed (\d+)", status.stdout)
        return bool(live and int(live[1]) >= 1 and "0 of 1 committed" in status.stdout) or proc.poll() is not None

    try:
        wait_for(counted_before_commit, timeout=240, interval=0.3, what="a live count before the first commit")
        _, stderr = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    live = [s for s in seen if "through the model" in s and "0 of 1 committed" in s]
    assert live, "status never counted an image before the shard committed:\n" + "\n".join(seen[-3:])
    assert re.search(r"\d+\.\d\d images/s, ETA \d+:\d\d:\d\d", live[-1]), live[-1]
    # Once over, the bar's last rate is the one status gives for the last run.
    bar_rate = re.findall(r"committed 6 (\d+\.\d\d) images/s", stderr)
    last_run = re.search(r"last run: (\d+\.\d\d) images/s", run_cli(["status", str(out)]).stdout)
    assert bar_rate and last_run and bar_rate[-1] == last_run[1], (stderr[-600:], last_run)


def test_the_bar_and_status_show_the_same_rate_and_eta(tmp_path):
    """Both read one progress record and one formula; a steady rate keeps them equal across a second."""
    out = tmp_path / "out"
    out.mkdir()
    now = time.time()
    with OutputLock(out, "run-1"):
        live = RunProgress("run-1", now - 6000, 4000, processed=3000, committed=2900, updated=now, model_ready=True)
        write_progress(out, live)
        _make_minimal_output(out)
        status = CliRunner().invoke(app, ["status", str(out)])
        bar = f"{RateColumn.text(live, time.time())}, {EtaColumn.text(live, time.time())}"
    assert status.exit_code == 0, status.output
    assert "3000 of 4000 images through the model, committed 2900" in status.output
    assert bar == "0.50 images/s, ETA 0:33:20"
    assert f"; {bar}" in status.output


def _make_minimal_output(out):
    """An empty store of one image (the status command needs its attributes)."""
    from saldata.schemas.store import STORE_SCHEMA_VERSION, Geometry
    from saldata.storage.zarr_store import create_store

    geometry = Geometry(1, 2, 8, 2, (2, 2), (2, 3), (64, 48))
    create_store(out, geometry, 1, {"n_images": 1, "shard_size": 1, "schema_version": STORE_SCHEMA_VERSION})


@pytest.mark.slow
def test_a_rerun_with_nothing_to_do_says_so_without_ray_or_torch(tmp_path, reference_run):
    out = tmp_path / "moved"  # an output may be moved: still the same command
    shutil.copytree(reference_run, out)
    probe = (
        "import sys\nfrom saldata.cli.main import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('imported:', sorted(m for m in ('ray', 'torch', 'transformers') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", probe, "extract", *DEMO_ARGS, "--out", str(out)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    # The run's report, on stdout like every command's (#26): not on stderr with the bar.
    assert "Nothing to do" in proc.stdout and str(out) in proc.stdout and "Nothing to do" not in proc.stderr
    assert "imported: []" in proc.stdout, proc.stdout  # neither Ray nor the model was started
    print(f"nothing-to-do rerun: {seconds:.2f} s")


@pytest.mark.slow
def test_a_damaged_shard_is_not_nothing_to_do(tmp_path, reference_run):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    (out / "catalog" / "tokens" / "shard-00003.parquet").unlink()
    proc = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to do" not in proc.stderr + proc.stdout
    assert "Shard 3 is damaged and is redone" in proc.stderr


@pytest.mark.slow
def test_edited_store_metadata_is_restored_by_the_rerun_saying_so(tmp_path, reference_run):
    """Not "Nothing to do" over an edited zarr.json: the rerun writes it back from commits/store.json."""
    import json

    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    meta_path = out / "features.zarr" / "hidden" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    transpose = meta["codecs"][0]["configuration"]["codecs"][0]["configuration"]
    transpose["order"] = [*transpose["order"][:-2], transpose["order"][-1], transpose["order"][-2]]
    meta_path.write_text(json.dumps(meta, indent=2))
    proc = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Restored the store's metadata" in proc.stderr and "features.zarr/hidden/zarr.json" in proc.stderr
    assert meta_path.read_bytes() == (reference_run / "features.zarr" / "hidden" / "zarr.json").read_bytes()
