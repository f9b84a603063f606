"""Hostile input: every bad file is handled or recorded as failed naming file and problem; the run completes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.datasets.base import ImageSource
from saldata.pipelines.preprocess import load_image
from tests.datasets.hostile import EXPECTED, exif_rotated, make_hostile_folder
from tests.helpers import run_cli

SIZE = (640, 480)


def as_unprivileged(cmd: list[str]) -> list[str]:
    """Root reads any file; drop the capabilities that let it, so permission errors are real."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--", *cmd]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("hostile") / "images"
    make_hostile_folder(root)
    out = root.parent / "out"
    args = ["extract", "--dataset", f"folder:{root}", "--model", "tiny-random", "--max-new-tokens", "2"]
    proc = run_cli([*args, "--shard-size", "6", "--out", str(out)], prefix=as_unprivileged)
    return root, out, proc


def test_run_completes_with_exit_code_zero(hostile_run):
    _, _, proc = hostile_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = sum(1 for reason in EXPECTED.values() if reason)
    assert f"done {len(EXPECTED) - failed}" in proc.stderr and f"failed {failed}" in proc.stderr


def test_every_file_is_handled_or_failed_with_its_reason(hostile_run):
    root, out, _ = hostile_run
    rows = {r["image_id"]: r for r in pq.read_table(out / "catalog" / "images").to_pylist()}
    assert set(rows) == set(EXPECTED)  # odd and duplicate names keep distinct ids
    for name, reason in EXPECTED.items():
        row = rows[name]
        if reason is None:
            assert row["status"] == "done" and row["error"] is None, (name, row["error"])
        else:
            assert row["status"] == "failed", name
            assert str(root / name) in row["error"] and reason in row["error"], (name, row["error"])
    assert (rows["exif_rotated.jpg"]["orig_width"], rows["exif_rotated.jpg"]["orig_height"]) == (480, 640)


def test_summary_and_status_group_failures_by_reason(hostile_run):
    _, out, proc = hostile_run
    assert "failures by reason" in proc.stderr and "permission denied" in proc.stderr
    result = CliRunner().invoke(app, ["status", str(out)])
    assert result.exit_code == 0
    assert "failed 6" in result.output
    for reason in ("empty file (0 bytes)", "decompression bomb refused", "permission denied", "truncated image data"):
        assert reason in result.output
    assert "     2  not an image" in result.output  # the same problem on two files is one line


def test_fail_fast_stops_at_the_first_bad_image(tmp_path, tiny_model_dir):
    root = tmp_path / "images"
    make_hostile_folder(root)
    out = tmp_path / "out"
    args = ["extract", "--dataset", f"folder:{root}", "--model", "tiny-random", "--max-new-tokens", "2"]
    proc = run_cli([*args, "--shard-size", "1", "--fail-fast", "--out", str(out)], prefix=as_unprivileged)
    assert proc.returncode == 1
    assert "--fail-fast" in proc.stderr and str(root) in proc.stderr
    rows = pq.read_table(out / "catalog" / "images").to_pylist()
    assert len(rows) < len(EXPECTED) and any(r["status"] == "failed" for r in rows)


def _load(path):
    loaded = load_image(0, ImageSource("folder", "all", path.name, str(path)), SIZE)
    assert loaded.error is None, loaded.error
    return loaded


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode") / "images"
    make_hostile_folder(root)
    return root


def test_cmyk_alpha_16bit_palette_come_out_as_seen(folder):
    assert np.abs(_load(folder / "cmyk.jpg").pixels.astype(int) - (255, 0, 0)).max() < 8
    assert (_load(folder / "alpha.png").pixels == 255).all()  # transparent shows the white behind it
    assert np.abs(_load(folder / "gray16.png").pixels.astype(int) - round(40000 / 257)).max() <= 1  # not clipped
    assert np.abs(_load(folder / "palette.png").pixels.astype(int) - (0, 128, 0)).max() < 8
    assert (_load(folder / "palette_transparent.png").pixels == 255).all()
    tiny = _load(folder / "one_pixel.png")
    assert tiny.orig_size == (1, 1) and (tiny.pixels == (10, 200, 30)).all()


def test_exif_orientation_is_respected(tmp_path):
    upright = exif_rotated(tmp_path / "r.jpg")
    loaded = load_image(0, ImageSource("folder", "all", "r.jpg", str(tmp_path / "r.jpg")), (480, 640))
    assert loaded.orig_size == (480, 640)
    assert np.abs(loaded.pixels.astype(int) - upright.astype(int)).mean() < 3
    with Image.open(tmp_path / "r.jpg") as raw:
        assert raw.size == (640, 480)  # as stored: only the EXIF tag turns it
