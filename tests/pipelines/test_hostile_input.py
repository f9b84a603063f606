"""Hostile input: every bad file is handled or recorded as failed naming file and problem; the run completes."""

from __future__ import annotations

import json
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
from tests.datasets.hostile import EXIF_QUADRANTS, EXPECTED, exif_rotated, make_fail_fast_folder, make_hostile_folder
from tests.helpers import committed, run_cli

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


@pytest.mark.slow
def test_run_completes_with_exit_code_zero(hostile_run):
    _, _, proc = hostile_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = sum(1 for reason in EXPECTED.values() if reason)
    assert f"done {len(EXPECTED) - failed}" in proc.stdout and f"failed {failed}" in proc.stdout


@pytest.mark.slow
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


@pytest.mark.slow
def test_summary_and_status_group_failures_by_reason(hostile_run):
    _, out, proc = hostile_run
    assert "failures by reason" in proc.stdout and "permission denied" in proc.stdout
    result = CliRunner().invoke(app, ["status", str(out)])
    assert result.exit_code == 0
    assert "failed 6" in result.output
    for reason in ("empty file (0 bytes)", "decompression bomb refused", "permission denied", "truncated image data"):
        assert reason in result.output
    assert "     2  not an image" in result.output  # the same problem on two files is one line


@pytest.mark.slow
def test_fail_fast_stops_at_the_first_bad_image(tmp_path, tiny_model_dir):
    """The error names the first bad file in idx order; its shard is committed, no shard after it."""
    root = tmp_path / "images"
    expected = make_fail_fast_folder(root)
    order = list(expected)  # the folder dataset's order: sorted relative paths
    bad = [i for i, name in enumerate(order) if expected[name]]
    first, shard_size = bad[0], 2
    first_shard = first // shard_size
    assert first % shard_size == 1 and all(i // shard_size > first_shard for i in bad[1:3])  # see the fixture
    out = tmp_path / "out"
    args = ["extract", "--dataset", f"folder:{root}", "--model", "tiny-random", "--max-new-tokens", "2"]
    proc = run_cli([*args, "--shard-size", str(shard_size), "--fail-fast", "--out", str(out)])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "--fail-fast" in proc.stderr
    named = [order[i] for i in bad if str(root / order[i]) in proc.stderr]
    assert named == [order[first]], f"the error names {named}, not the first bad file {order[first]}"
    assert expected[order[first]] in proc.stderr
    shards = {int(p.stem.split("-")[1]) for p in committed(out)}
    assert {s for s in shards if s > first_shard} == set(), (
        f"shards after the first bad file's were committed: {shards}"
    )
    assert first_shard in shards, f"the first bad file's shard is not committed with its failure recorded: {shards}"
    rows = {r["image_id"]: r for r in pq.read_table(out / "catalog" / "images").to_pylist()}
    assert rows[order[first]]["status"] == "failed" and expected[order[first]] in rows[order[first]]["error"]
    assert all(rows[name]["status"] == "done" for name in rows if name != order[first])
    (journal,) = (out / "journal").glob("*.jsonl")
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert max(e["shard"] for e in events if e["event"] == "commit") == first_shard
    assert events[-1]["event"] == "end" and events[-1].get("stopped") == "fail-fast"


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
    upright = exif_rotated(tmp_path / "r.jpg").astype(int)
    stored = np.rot90(upright, k=1)
    # The fixture itself: every other way of standing the stored picture up is far from upright.
    wrong_ways = {
        "transposed": stored.transpose(1, 0, 2),
        "rotated counter-clockwise": np.rot90(stored, k=1),
        "anti-transposed": np.rot90(stored, k=2).transpose(1, 0, 2),
        "upright, flipped": upright[::-1],
        "upright, mirrored": upright[:, ::-1],
    }
    for name, picture in wrong_ways.items():
        assert picture.shape == upright.shape and np.abs(picture - upright).mean() > 60, name
    loaded = load_image(0, ImageSource("folder", "all", "r.jpg", str(tmp_path / "r.jpg")), (480, 640))
    assert loaded.orig_size == (480, 640)
    assert loaded.pixels.shape == upright.shape
    assert np.abs(loaded.pixels.astype(int) - upright).mean() < 3
    # Turned clockwise: the stored bottom-left quadrant is now top-left, its top-left top-right, and so on.
    corners = {(120, 160): 2, (360, 160): 0, (120, 480): 3, (360, 480): 1}  # upright (x, y) -> stored quadrant
    for (x, y), quadrant in corners.items():
        assert np.abs(loaded.pixels[y, x].astype(int) - EXIF_QUADRANTS[quadrant]).max() < 8, (x, y)
    with Image.open(tmp_path / "r.jpg") as raw:
        assert raw.size == (640, 480)  # as stored: only the EXIF tag turns it
