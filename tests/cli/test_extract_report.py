"""What extract says about a run: what it retries, its rate, where its summary goes; status --failed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from saldata.cli.main import app
from tests.helpers import run_cli
from tests.ray_free_run import build


def _folder(root, broken=("d.jpg",)):
    """Good images a, b, c (and d unless broken); each name in ``broken`` is not an image."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.png", "c.png", "d.jpg"):
        if name in broken:
            (root / name).write_text("not an image")
        else:
            Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(root / name)
    return root


@pytest.fixture(scope="module")
def one_shard_with_failures(tmp_path_factory):
    """Four images in one shard (the readers' shard size), b and d not images; built without Ray."""
    root = tmp_path_factory.mktemp("failures")
    images = _folder(root / "images", broken=("b.png", "d.jpg"))
    return images, build(root / "out", dataset=f"folder:{images}")


def test_status_failed_lists_each_failed_image_with_its_file_and_reason(one_shard_with_failures):
    images, out = one_shard_with_failures
    result = CliRunner().invoke(app, ["status", str(out), "--failed"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("  failed images (idx, image id, file, reason):")
    listed = lines[at + 1 :]
    assert len(listed) == 2, result.output
    assert re.fullmatch(rf"\s+1  b\.png  {re.escape(str(images / 'b.png'))}: .*not an image.*", listed[0]), listed
    assert re.fullmatch(rf"\s+3  d\.jpg  {re.escape(str(images / 'd.jpg'))}: .*not an image.*", listed[1]), listed
    # Without --failed, the counts by reason only, as before.
    plain = CliRunner().invoke(app, ["status", str(out)])
    assert "failed images" not in plain.output and "failures by reason" in plain.output


def test_status_failed_on_an_output_without_failures_says_none(demo_output_ray_free):
    result = CliRunner().invoke(app, ["status", str(demo_output_ray_free), "--failed"])
    assert result.exit_code == 0 and "  failed images: none" in result.output, result.output


EXTRACT = ["extract", "--model", "tiny-random", "--max-new-tokens", "2", "--shard-size", "2", "--batch-size", "2"]


@pytest.mark.slow
def test_retry_failed_says_what_it_retries_and_reports_on_stdout(tmp_path, tiny_model_dir):
    images = _folder(tmp_path / "images")
    out = tmp_path / "out"
    first = run_cli([*EXTRACT, "--dataset", f"folder:{images}", "--out", out])
    assert first.returncode == 0, first.stderr[-2000:]
    # The summary is the command's report: stdout, like every other command's; the bar stays on stderr.
    assert "done 3  failed 1  processed 4 of 4 images" in first.stdout, first.stdout
    assert "done 3" not in first.stderr and "extract " in first.stderr, first.stderr
    assert f"details: saldata status {out} --failed; redo them with --retry-failed" in first.stdout

    Image.new("RGB", (80, 60), (9, 9, 9)).save(images / "d.jpg", format="JPEG")  # repaired
    retry = run_cli([*EXTRACT, "--dataset", f"folder:{images}", "--out", out, "--retry-failed"])
    assert retry.returncode == 0, retry.stderr[-2000:]
    # It used to say "Resuming: 2 shards already committed are skipped." and then retry shard 1.
    assert "Resuming: 1 shard already committed is skipped." in retry.stderr, retry.stderr
    assert "Retrying 1 failed image in 1 committed shard (1); its done images are kept." in retry.stderr
    assert "done 1  failed 0  processed 1 of 4 images" in retry.stdout, retry.stdout
    # One image is no rate: it used to report e.g. "82.21 images/s".
    assert "images/s" not in retry.stderr + retry.stdout, retry.stderr
    assert re.search(r"1 image in \d+\.\d\d s", retry.stderr), retry.stderr
    status = run_cli(["status", out])
    assert re.search(r"last run: 1 image in \d+\.\d\d s", status.stdout), status.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "value"), [("--layers", "5"), ("--layers", "0,5"), ("--layer", "5")])
def test_a_layer_out_of_range_names_the_flag_given(tmp_path, tiny_model_dir, demo_root, flag, value):
    proc = run_cli([*EXTRACT, "--dataset", "demo", flag, value, "--out", tmp_path / "out"])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"Error: {flag} 5 is out of range:"), proc.stderr


def test_counts_of_one_are_singular(one_shard_with_failures):
    # "1 committed shards checked", "1 rows", "0 of 1 images" before.
    _, out = one_shard_with_failures
    verify = CliRunner().invoke(app, ["verify", str(out)])
    assert verify.exit_code == 0 and f"{out}: 1 committed shard checked (" in verify.output, verify.output
    query = CliRunner().invoke(app, ["catalog", "query", str(out), "SELECT 1 AS x"], env={"COLUMNS": "200"})
    assert query.exit_code == 0 and "1 row" in query.output and "1 rows" not in query.output, query.output
    show = CliRunner().invoke(app, ["catalog", "show", str(out)], env={"COLUMNS": "200"})
    assert "fixations: 0 rows" in show.output and "images: 4 rows" in show.output, show.output
