"""Ground truth: SALICON .mat quirks, rasterisation, and what the store and catalog hold."""

from __future__ import annotations

import shutil
from dataclasses import replace

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
    GroundTruth,
    GroundTruthError,
    fixation_map,
    load_ground_truth,
    salicon_fixations,
)
from tests.datasets.formats import (
    make_cat2000,
    make_mit1003,
    make_osie,
    make_salicon,
    rasterise,
    write_osie_fixations,
)
from tests.helpers import run_cli


def test_salicon_mat_quirks(tmp_path):
    path = tmp_path / "x.mat"
    write_salicon_fixations(path, "x", (640, 480), [(100, 100, 20)], np.random.default_rng(0), subjects=4)
    raw = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["gaze"]
    assert raw[0].fixations.shape == (2,) and raw[1].fixations.shape == (0,)  # the shapes that trip loaders
    points = salicon_fixations(str(path))
    expected = sum(np.asarray(g.fixations).reshape(-1, 2).shape[0] for g in raw)
    assert points.xy.shape == (expected, 2) and points.frame == (640, 480)
    assert points.xy[0].tolist() == (np.asarray(raw[0].fixations) - 1).tolist()  # 1-based to 0-based
    assert points.subject.tolist()[:1] == [0] and 1 not in points.subject  # subject 1 has none, keeps its number


def test_single_subject_mat_is_a_scalar_struct(tmp_path):
    path = tmp_path / "one.mat"
    gaze = np.zeros((1, 1), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    gaze[0, 0] = (np.array([[3.0, 4.0]]), np.array([[0.0]]), np.array([[3.0, 4.0], [10.0, 20.0]]))
    scipy.io.savemat(path, {"gaze": gaze, "resolution": np.array([480, 640])})
    points = salicon_fixations(str(path))
    assert points.xy.tolist() == [[2.0, 3.0], [9.0, 19.0]] and points.subject.tolist() == [0, 0]


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


def test_fixation_map_refuses_non_finite_points():
    # cast to int, NaN became column 0 (and a RuntimeWarning, an error only under pytest)
    points = np.array([[np.nan, 1.0], [3.0, np.inf], [5.0, 5.0]])
    with pytest.raises(GroundTruthError, match=r"^2 fixation coordinates are not finite \(NaN or Inf\)$"):
        fixation_map(points, (640, 480), (320, 240))


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


@pytest.fixture
def broken_ground_truth(demo_root, tmp_path):
    """(root, stems): a SALICON-like copy of the demo whose first map is gone and second .mat has other keys."""
    root = tmp_path / "salicon"
    shutil.copytree(demo_root, root)
    stems = sorted(p.stem for p in (root / "images" / "val").glob("*.jpg"))
    (root / "maps" / "val" / f"{stems[0]}.png").unlink()
    scipy.io.savemat(root / "fixations" / "val" / f"{stems[1]}.mat", {"something_else": np.ones(3)})
    return root, stems


@pytest.mark.slow
def test_missing_or_broken_ground_truth_is_recorded_not_fatal(broken_ground_truth, tmp_path):
    root, stems = broken_ground_truth
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


def test_missing_map_or_broken_mat_fails_that_image_naming_the_file(broken_ground_truth):
    """The ground-truth half of the run above, without the run: what each image records."""
    root, stems = broken_ground_truth
    sources = list_images("salicon", root, "val")[:3]
    truths = []
    for source in sources:
        with Image.open(source.path) as image:
            truths.append(load_ground_truth(source, image.size, (640, 480)))
    assert [t.status for t in truths] == [GT_FAILED, GT_FAILED, GT_OK]
    assert f"{stems[0]}.png" in truths[0].error and "cannot read saliency map" in truths[0].error
    assert f"{stems[1]}.mat" in truths[1].error and "something_else" in truths[1].error
    assert truths[0].saliency is None and truths[0].fixations.sum() > 0  # what could be read is kept
    assert truths[1].fixations is None and truths[1].saliency is not None


def _resized_png(path, size):
    with Image.open(path) as png:
        return np.asarray(png.convert("L").resize(size, Image.Resampling.BILINEAR))


def test_nan_fixations_fail_naming_the_file(tmp_path):
    nan = float("nan")
    make_salicon(
        tmp_path,
        {
            "COCO_val2014_000000000001": [[[10, 10], [20, 20]], [[nan, 30], [40, nan]], [[nan, 60]]],
            "COCO_val2014_000000000002": [[[10, 10], [20, 20]]],
        },
    )
    bad, good = list_images("salicon", tmp_path, "val")
    gt = load_ground_truth(bad, (640, 480), (320, 240))
    assert gt.status == GT_FAILED
    assert gt.error == f"{bad.fixations_path}: 3 fixation coordinates are not finite (NaN or Inf)"
    # Failed fixations store nothing of them (the finite points are not rasterised either) ...
    assert gt.fixations is None and gt.n_fixations is None and gt.n_fixations_clipped is None
    # ... while the saliency map, read whole, is kept, as for any other unreadable fixations.
    np.testing.assert_array_equal(gt.saliency, _resized_png(bad.saliency_path, (320, 240)))
    ok = load_ground_truth(good, (640, 480), (320, 240))
    assert (ok.status, ok.error, ok.n_fixations, ok.n_fixations_clipped) == (GT_OK, None, 2, 0)


def test_inf_osie_fixations_fail_that_image_only(tmp_path):
    make_osie(tmp_path)
    inf = float("inf")
    mat = tmp_path / "data" / "eye" / "fixations.mat"
    write_osie_fixations(
        mat,
        {
            "1001.jpg": [np.array([[10, 10], [inf, 20]]), np.array([[5, -inf]])],
            "1002.jpg": [np.array([[1, 1], [800, 600]])],
            "1003.jpg": [np.array([[inf, 3]])],
        },
    )
    sources = list_images("osie", tmp_path, None)
    truths = [load_ground_truth(s, (800, 600), (640, 480)) for s in sources]
    assert [t.status for t in truths] == [GT_FAILED, GT_OK, GT_FAILED]
    assert truths[0].error == f"{mat}#1001.jpg: 2 fixation coordinates are not finite (NaN or Inf)"
    assert truths[2].error == f"{mat}#1003.jpg: 1 fixation coordinate is not finite (NaN or Inf)"
    assert truths[0].fixations is None and truths[2].fixations is None
    assert [t.n_fixations for t in truths] == [None, 2, None]
    assert [t.n_fixations_clipped for t in truths] == [None, 0, None]
    assert {tuple(p) for p in np.argwhere(truths[1].fixations)} == {(0, 0), (479, 639)}


def test_points_off_the_image_are_clipped_and_counted(tmp_path):
    # The rule: after the 1-based -> 0-based shift, a point (x, y) is clipped iff it is outside
    # [0, width) x [0, height) of the image its coordinates refer to (original pixels, before
    # rescaling). So 1-based 1 and 640 are inside a 640-wide image, 0, 0.5 and 641 are not,
    # and a fractional 640.5 (0-based 639.5, still in the last column) is inside.
    inside = [[1, 1], [640, 480], [640.5, 100]]
    outside = [[0, 5], [641, 10], [0.5, 10], [10, 481], [700, -5]]  # the last is off on both axes: one point
    make_salicon(tmp_path, {"COCO_val2014_000000000001": [inside[:2], outside[:3], [inside[2], *outside[3:]]]})
    (source,) = list_images("salicon", tmp_path, "val")
    gt = load_ground_truth(source, (640, 480), (640, 480))
    assert (gt.status, gt.error) == (GT_OK, None)
    assert gt.n_fixations == 8 and gt.n_fixations_clipped == 5
    # (row, col) cells: the outside points land on the border, as before
    assert {tuple(p) for p in np.argwhere(gt.fixations)} == {
        (0, 0), (479, 639), (99, 639),  # inside
        (4, 0), (9, 639), (9, 0), (479, 9), (0, 639),  # clipped
    }  # fmt: skip
    # counted in original pixels: the stored size does not change the count
    small = load_ground_truth(source, (640, 480), (320, 240))
    assert (small.n_fixations, small.n_fixations_clipped) == (8, 5)


def test_demo_off_image_point_is_counted(demo_root):
    # write_salicon_fixations puts exactly one point off the image; count independently from the .mat
    for source in list_images("salicon", demo_root, "val"):
        mat = scipy.io.loadmat(source.fixations_path)
        h, w = (int(v) for v in mat["resolution"].ravel())
        points = np.concatenate([np.asarray(s["fixations"]).reshape(-1, 2) for s in mat["gaze"].ravel()]) - 1
        off = int(np.sum((points[:, 0] < 0) | (points[:, 0] >= w) | (points[:, 1] < 0) | (points[:, 1] >= h)))
        gt = load_ground_truth(source, (w, h), (320, 240))
        assert off == 1 and (gt.status, gt.n_fixations_clipped) == (GT_OK, off)


def test_no_clipping_counts_zero_and_no_fixations_count_none(tmp_path):
    truth = make_osie(tmp_path / "osie")
    for source in list_images("osie", tmp_path / "osie", None):
        gt = load_ground_truth(source, (800, 600), (640, 480))
        assert (gt.status, gt.n_fixations, gt.n_fixations_clipped) == (GT_OK, len(truth[source.image_id]), 0)
        cells = rasterise(truth[source.image_id], (800, 600), (640, 480))
        assert {tuple(p) for p in np.argwhere(gt.fixations)} == cells
    for make, dataset, split in [(make_mit1003, "mit1003", None), (make_cat2000, "cat2000", "train")]:
        truth = make(tmp_path / dataset)
        for source in list_images(dataset, tmp_path / dataset, split):
            with Image.open(source.path) as image:
                orig = image.size
            gt = load_ground_truth(source, orig, (640, 480))
            assert (gt.status, gt.n_fixations, gt.n_fixations_clipped) == (GT_OK, len(truth[source.image_id]), 0)
    # no fixations at all: None, not 0
    make_salicon(tmp_path / "salicon", {"COCO_val2014_000000000001": [[[10, 10]]]})
    shutil.rmtree(tmp_path / "salicon" / "fixations")
    (saliency_only,) = list_images("salicon", tmp_path / "salicon", "val")
    assert saliency_only.fixations_path is None
    gt = load_ground_truth(saliency_only, (640, 480), (640, 480))
    assert (gt.status, gt.n_fixations, gt.n_fixations_clipped) == (GT_OK, None, None)
    assert load_ground_truth(replace(saliency_only, saliency_path=None), (640, 480), (640, 480)) == GroundTruth(GT_NONE)


@pytest.mark.parametrize(
    "resolution", [[[0, 0]], [[-1, 640]], [[480, -640]], [[float("nan"), 480]], [[480, float("inf")]], [[480]]]
)
def test_impossible_salicon_resolution_fails_naming_the_file(tmp_path, resolution):
    # A frame of 0x0 (or negative) once scaled every point onto the corner pixel and said "ok".
    make_salicon(tmp_path, {"COCO_val2014_000000000001": [[[10, 10], [20, 20]]]})
    (source,) = list_images("salicon", tmp_path, "val")
    mat = scipy.io.loadmat(source.fixations_path)
    scipy.io.savemat(source.fixations_path, {"gaze": mat["gaze"], "resolution": np.array(resolution, np.float64)})
    gt = load_ground_truth(source, (640, 480), (320, 240))
    assert gt.status == GT_FAILED
    assert gt.error.startswith(f"{source.fixations_path}: cannot read fixations ('resolution' is ")
    assert gt.error.endswith("not a positive (height, width))")
    assert gt.fixations is None and gt.n_fixations is None and gt.points is None
