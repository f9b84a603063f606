"""Ground truth: SALICON .mat quirks, rasterisation, and what the store and catalog hold."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.dataset as pads
import pytest
import scipy.io
import zarr
from PIL import Image

from saldata.datasets import list_images
from saldata.datasets.demo import write_salicon_fixations
from saldata.datasets.ground_truth import (
    GT_FAILED,
    GT_NONE,
    GT_OK,
    GroundTruthError,
    fixation_map,
    load_ground_truth,
    salicon_fixations,
)
from tests.helpers import run_cli


def test_salicon_mat_quirks(tmp_path):
    path = tmp_path / "x.mat"
    write_salicon_fixations(path, "x", (640, 480), [(100, 100, 20)], np.random.default_rng(0), subjects=4)
    raw = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["gaze"]
    assert raw[0].fixations.shape == (2,) and raw[1].fixations.shape == (0,)  # the shapes that trip loaders
    points, size = salicon_fixations(str(path))
    expected = sum(np.asarray(g.fixations).reshape(-1, 2).shape[0] for g in raw)
    assert points.shape == (expected, 2) and size == (640, 480)
    assert points[0].tolist() == (np.asarray(raw[0].fixations) - 1).tolist()  # 1-based to 0-based


def test_single_subject_mat_is_a_scalar_struct(tmp_path):
    path = tmp_path / "one.mat"
    gaze = np.zeros((1, 1), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    gaze[0, 0] = (np.array([[3.0, 4.0]]), np.array([[0.0]]), np.array([[3.0, 4.0], [10.0, 20.0]]))
    scipy.io.savemat(path, {"gaze": gaze, "resolution": np.array([480, 640])})
    points, _ = salicon_fixations(str(path))
    assert points.tolist() == [[2.0, 3.0], [9.0, 19.0]]


def test_mat_with_unexpected_keys_names_them(tmp_path):
    path = tmp_path / "odd.mat"
    scipy.io.savemat(path, {"fixLocs": np.zeros((2, 2))})
    with pytest.raises(GroundTruthError, match="no 'gaze' variable.*fixLocs"):
        salicon_fixations(str(path))


def test_fixation_map_scales_and_clips():
    points = np.array([[0.0, 0.0], [639.0, 479.0], [700.0, -5.0], [320.0, 240.0]])
    out = fixation_map(points, (640, 480), (320, 240))
    assert out.shape == (240, 320) and out.dtype == np.uint8
    assert {tuple(p) for p in np.argwhere(out)} == {(0, 0), (239, 319), (0, 319), (120, 160)}


def test_store_holds_the_demo_ground_truth(demo_output, demo_root):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    images = pads.dataset(demo_output / "catalog" / "images", format="parquet").to_table().sort_by("idx").to_pylist()
    for row in images:
        idx, stem = row["idx"], row["image_id"]
        assert row["gt_status"] == GT_OK and row["gt_error"] is None
        with Image.open(demo_root / "maps" / "val" / f"{stem}.png") as png:
            expected = np.asarray(png.convert("L").resize((640, 480), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(group["saliency_map"][idx], expected)
        # independent rasterisation straight from the .mat
        mat = scipy.io.loadmat(demo_root / "fixations" / "val" / f"{stem}.mat")
        h, w = (int(v) for v in mat["resolution"].ravel())
        cells = set()
        for subject in mat["gaze"].ravel():
            for x, y in np.asarray(subject["fixations"]).reshape(-1, 2):
                cells.add((min(max(int((y - 1) * 480 // h), 0), 479), min(max(int((x - 1) * 640 // w), 0), 639)))
        assert {tuple(p) for p in np.argwhere(group["fixation_map"][idx])} == cells
        assert row["n_fixations"] == sum(
            np.asarray(s["fixations"]).reshape(-1, 2).shape[0] for s in mat["gaze"].ravel()
        )


def test_test_split_has_no_ground_truth(demo_root, tmp_path):
    root = tmp_path / "salicon"
    shutil.copytree(demo_root / "images" / "val", root / "images" / "test")
    (source,) = list_images("salicon", root, "test")[:1]
    assert source.saliency_path is None and source.fixations_path is None
    assert load_ground_truth(source, (640, 480), (640, 480)).status == GT_NONE


def test_missing_or_broken_ground_truth_is_recorded_not_fatal(demo_root, tmp_path):
    root = tmp_path / "salicon"
    shutil.copytree(demo_root, root)
    stems = sorted(p.stem for p in (root / "images" / "val").glob("*.jpg"))
    (root / "maps" / "val" / f"{stems[0]}.png").unlink()
    scipy.io.savemat(root / "fixations" / "val" / f"{stems[1]}.mat", {"something_else": np.ones(3)})
    out = tmp_path / "out"
    args = ["--dataset", "salicon", "--data-root", root, "--split", "val", "--model", "tiny-random"]
    proc = run_cli(["extract", *map(str, args), "--max-new-tokens", "2", "--limit", "3", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pads.dataset(out / "catalog" / "images", format="parquet").to_table().sort_by("idx").to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 3
    assert [r["gt_status"] for r in rows] == [GT_FAILED, GT_FAILED, GT_OK]
    assert f"{stems[0]}.png" in rows[0]["gt_error"] and "cannot read saliency map" in rows[0]["gt_error"]
    assert f"{stems[1]}.mat" in rows[1]["gt_error"] and "something_else" in rows[1]["gt_error"]
    group = zarr.open_group(out / "features.zarr", mode="r")
    assert group["saliency_map"][0].max() == 0 and group["fixation_map"][0].sum() > 0  # what could be read is kept
