"""Resume, retry, guards, write errors and a killed model actor, on the real pipeline and Ray."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image

from saldata.errors import ConfigError, StoreError
from saldata.extractors.llava_next import CaptureSettings
from saldata.extractors.models import ModelSettings
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.extract import plan_run, run_extraction
from saldata.storage.commits import read_commit_log
from saldata.storage.journal import read_journals
from tests.helpers import DEMO_ARGS, DEMO_SHARDS, assert_same_output, committed, processes_named, run_cli, wait_for

pytestmark = pytest.mark.slow  # every test runs the pipeline through Ray or reads reference_run


def demo_config(out, **overrides) -> ExtractConfig:
    """The in-process twin of DEMO_ARGS (see tests/helpers.py)."""
    fields = dict(
        dataset="demo",
        out=out,
        model=ModelSettings("tiny-random"),
        capture=CaptureSettings(max_new_tokens=4),
        batch_size=1,
        shard_size=1,
    )
    return ExtractConfig(**{**fields, **overrides})


def test_rerun_redoes_only_the_uncommitted_shard_and_overwrites_its_chunks(ray_local, tmp_path, reference_run):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    (out / "catalog" / "images" / "shard-00003.parquet").unlink()  # as if killed before this commit
    group = zarr.open_group(out / "features.zarr", mode="r+")
    group["attn_highres"][3] = 7.0  # a half-written, wrong chunk
    group["token_ids"][3] = 99
    summary = run_extraction(plan_run(demo_config(out)))
    assert (summary.processed, summary.skipped_shards) == (1, DEMO_SHARDS - 1)
    assert read_journals(out)[-1][0]["shards"] == [3]
    assert_same_output(out, reference_run)


def test_model_actor_killed_mid_run_is_survived(ray_local, tmp_path, reference_run):
    out = tmp_path / "out"
    errors = []

    def run():
        try:
            run_extraction(plan_run(demo_config(out)))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(lambda: committed(out), timeout=180, what="a first commit")
    actors = processes_named("ray::ExtractorActor")
    assert actors, "no model actor process found"
    for proc in actors:
        proc.kill()
    killed_at = len(committed(out))
    worker.join(timeout=300)
    assert not worker.is_alive() and not errors, errors
    assert killed_at < DEMO_SHARDS, "the actor was killed after the run had finished"
    assert_same_output(out, reference_run)


def test_failing_commit_stops_naming_the_shard_and_the_rerun_finishes_it(ray_local, tmp_path, reference_run):
    out = tmp_path / "out"
    obstacle = out / "catalog" / "images" / "shard-00002.parquet"
    obstacle.mkdir(parents=True)  # moving the shard's file into place fails with a real OS error
    with pytest.raises(StoreError) as err:
        run_extraction(plan_run(demo_config(out)))
    message = str(err.value)
    assert "Shard 2 could not be committed" in message and str(obstacle) in message and "rerun" in message
    assert "\n" not in message
    log = read_commit_log(out)
    assert 2 in log.pending and 2 not in log.committed  # switched, its files not all in place
    for shard in log.committed:  # what did commit is intact
        ref = pq.read_table(reference_run / "catalog" / "images" / f"shard-{shard:05d}.parquet")
        got = pq.read_table(out / "catalog" / "images" / f"shard-{shard:05d}.parquet")
        columns = ["load_s", "model_s", "source_path"]
        assert got.drop_columns(columns).equals(ref.drop_columns(columns))
    obstacle.rmdir()
    # The rerun is what a user does: the same command, a new process (and a new Ray).
    rerun = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Finished the commits a killed run left half done: shards 2." in rerun.stderr
    assert_same_output(out, reference_run)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (dict(capture=CaptureSettings(max_new_tokens=4, heads="mean")), "heads"),
        (dict(capture=CaptureSettings(max_new_tokens=4, layers=(0,))), "layers"),
        (dict(image_size=(336, 336)), "image_size"),
        (dict(model=ModelSettings("tiny-random", dtype="bfloat16")), "dtype"),
        (dict(limit=3), "n_images"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_the_difference(tmp_path, reference_run, change, named):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    with pytest.raises(ConfigError) as err:
        run_extraction(plan_run(demo_config(out, **change)))
    assert named in str(err.value) and "--overwrite" in str(err.value)
    assert len(committed(out)) == DEMO_SHARDS  # nothing was touched


@pytest.fixture
def folder_with_broken(tmp_path):
    return make_folder_with_broken(tmp_path / "images")


def make_folder_with_broken(root):
    """Three good images (a, b, c) and two that cannot be read (d, e)."""
    root.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(root / name)
    (root / "d.jpg").write_text("not a jpeg")
    (root / "e.jpg").write_bytes(b"")
    return root


def folder_config(root, out, **overrides):
    fields = dict(
        dataset=f"folder:{root}",
        out=out,
        model=ModelSettings("tiny-random"),
        capture=CaptureSettings(max_new_tokens=2),
        batch_size=2,
        shard_size=3,
        image_size=(336, 336),
    )
    return ExtractConfig(**{**fields, **overrides})


def test_failed_images_stay_failed_until_retry_failed(ray_local, tmp_path, folder_with_broken):
    out = tmp_path / "out"
    config = folder_config(folder_with_broken, out)
    first = run_extraction(plan_run(config))
    assert (first.done, first.failed) == (3, 2)
    again = run_extraction(plan_run(config))
    assert again.processed == 0
    before = zarr.open_group(out / "features.zarr", mode="r")["attn_highres"][:]

    Image.new("RGB", (80, 60), (9, 9, 9)).save(folder_with_broken / "d.jpg", format="JPEG")  # repaired
    retried = run_extraction(plan_run(config), retry_failed=True)
    assert (retried.processed, retried.done, retried.failed) == (2, 1, 1)
    images = pq.read_table(out / "catalog" / "images").sort_by("idx").to_pylist()
    assert [r["status"] for r in images] == ["done", "done", "done", "done", "failed"]
    assert "e.jpg" in images[4]["error"]
    after = zarr.open_group(out / "features.zarr", mode="r")["attn_highres"][:]
    np.testing.assert_array_equal(after[:3], before[:3])  # done rows untouched
    assert after[3].any() and not after[4].any()
    tokens = pq.read_table(out / "catalog" / "tokens")
    assert sorted(set(tokens["idx"].to_pylist())) == [0, 1, 2, 3]
    assert len(pq.read_table(out / "catalog" / "images")) == 5


def test_status_counts_and_groups_failures(ray_local, tmp_path, folder_with_broken):
    from typer.testing import CliRunner

    from saldata.cli.main import app

    out = tmp_path / "out"
    run_extraction(plan_run(folder_config(folder_with_broken, out, limit=4)))
    result = CliRunner().invoke(app, ["status", str(out)])
    assert result.exit_code == 0, result.output
    assert "images:  4   done 3   failed 1   pending 0" in result.output
    assert "2 of 2 committed" in result.output
    assert "not an image" in result.output and "last run:" in result.output


def test_resume_from_other_source_images_is_refused_naming_the_first(ray_local, tmp_path, folder_with_broken):
    import os

    out = tmp_path / "out"
    config = folder_config(folder_with_broken, out)
    run_extraction(plan_run(config))
    elsewhere = tmp_path / "copy"
    shutil.copytree(folder_with_broken, elsewhere)  # same ids, same pixels, another data root
    with pytest.raises(ConfigError) as err:
        run_extraction(plan_run(folder_config(elsewhere, out)))
    assert "image 0 (a.png)" in str(err.value) and str(elsewhere) in str(err.value) and "--overwrite" in str(err.value)

    target = folder_with_broken / "b.png"
    stat = target.stat()
    pixels = np.asarray(Image.open(target)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(target)  # changed pixels (same size, new time)
    with pytest.raises(ConfigError, match=r"image 1 \(b.png\) changed since it was committed"):
        run_extraction(plan_run(config))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the time put back
    assert target.stat().st_size == stat.st_size  # PNG of the same random pixels: only the content differs
    with pytest.raises(ConfigError, match=r"image 1 \(b.png\) changed since it was committed .*other content"):
        run_extraction(plan_run(config))
    shutil.copy2(elsewhere / "b.png", target)
    (folder_with_broken / "c.png").unlink()
    Image.fromarray(pixels).save(folder_with_broken / "c.png")  # a replaced file
    with pytest.raises(ConfigError, match=r"image 2 \(c.png\)"):
        run_extraction(plan_run(config))


def test_verify_names_tampered_shards_and_a_rerun_redoes_exactly_them(ray_local, tmp_path, reference_run):
    from typer.testing import CliRunner

    from saldata.cli.main import app

    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    flipped = out / "features.zarr" / "attn_highres" / "c" / "1" / "0" / "0" / "0" / "0" / "0"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    data[len(data) // 2 + 1] ^= 0x80
    flipped.write_bytes(bytes(data))  # two bits inside a compressed chunk, same size
    (out / "catalog" / "tokens" / "shard-00003.parquet").unlink()
    hidden = out / "features.zarr" / "hidden" / "c" / "4" / "0" / "0" / "0"
    hidden.write_bytes(hidden.read_bytes()[:-7])

    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1
    assert "shard 1: features.zarr/attn_highres/c/1/0/0/0/0/0: checksum differs" in result.output
    assert "shard 3: catalog/tokens/shard-00003.parquet: missing" in result.output
    assert "shard 4: features.zarr/hidden/c/4/0/0/0:" in result.output and "bytes, committed with" in result.output
    assert "3 damaged shards (1, 3, 4)" in result.output
    quick = CliRunner().invoke(app, ["verify", "--quick", str(out)])
    assert quick.exit_code == 1 and "shard 1" not in quick.output and "(3, 4)" in quick.output

    summary = run_extraction(plan_run(demo_config(out)))
    assert read_journals(out)[-1][0]["shards"] == [1, 3, 4] and summary.processed == 3
    assert_same_output(out, reference_run)
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0


def test_an_output_of_an_older_schema_is_refused_on_resume_and_still_read(ray_local, tmp_path, reference_run):
    import saldata

    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    shutil.rmtree(out / "commits")  # what a schema 2 output looks like: no records, images files as commits
    zarr.open_group(out / "features.zarr", mode="r+").attrs["schema_version"] = 2
    with pytest.raises(ConfigError) as err:
        run_extraction(plan_run(demo_config(out)))
    message = str(err.value)
    assert "older saldata (store schema_version 2" in message and "--overwrite" in message
    assert "saldata.open still reads it" in message
    assert saldata.open(out).images.num_rows == DEMO_SHARDS
