"""MIT1003, OSIE and CAT2000 end to end through the CLI, on fixtures in each dataset's real format."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.datasets import list_images
from saldata.errors import DatasetError
from tests.datasets.formats import make_cat2000, make_mit1003, make_osie, rasterise
from tests.helpers import run_cli

SIZE = (640, 480)


def extract(root, dataset, out, *extra):
    args = ["extract", "--dataset", dataset, "--data-root", str(root), "--model", "tiny-random"]
    proc = run_cli([*args, "--max-new-tokens", "2", "--out", str(out), *extra])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pq.read_table(out / "catalog" / "images").sort_by("idx").to_pylist()
    return rows, zarr.open_group(out / "features.zarr", mode="r")


def check_fixations(rows, group, truth, orig_sizes, out):
    import saldata

    table = saldata.open(out).fixations.to_pylist()
    for row in rows:
        points = truth[row["image_id"]]
        assert row["gt_status"] == "ok", row["gt_error"]
        assert row["n_fixations"] == len(points)
        stored = {tuple(p) for p in np.argwhere(group["fixation_map"][row["idx"]])}
        assert stored == rasterise(points, orig_sizes[row["image_id"]], SIZE)
        # the catalog's fixations table: every point, its floor the stored map's pixel
        mine = [r for r in table if r["idx"] == row["idx"]]
        assert sorted((r["orig_x"], r["orig_y"]) for r in mine) == sorted(map(tuple, points.astype(float).tolist()))
        assert {(int(np.floor(r["y"])), int(np.floor(r["x"]))) for r in mine} == stored


@pytest.mark.slow
def test_mit1003(tmp_path):
    truth = make_mit1003(tmp_path / "mit")
    rows, group = extract(tmp_path / "mit", "mit1003", tmp_path / "out")
    assert [r["image_id"] for r in rows] == sorted(truth)
    sizes = {r["image_id"]: (r["orig_width"], r["orig_height"]) for r in rows}
    assert sizes["i1182314083"] == (768, 1024)
    check_fixations(rows, group, truth, sizes, tmp_path / "out")  # JPEG-compressed points thresholded back exactly
    stem = rows[0]["image_id"]
    with Image.open(tmp_path / "mit" / "ALLFIXATIONMAPS" / f"{stem}_fixMap.jpg") as m:
        expected = np.asarray(m.convert("L").resize(SIZE, Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(group["saliency_map"][0], expected)


@pytest.mark.slow
def test_osie(tmp_path):
    truth = make_osie(tmp_path / "osie")
    rows, group = extract(tmp_path / "osie", "osie", tmp_path / "out")
    assert [r["image_id"] for r in rows] == ["1001", "1002", "1003"]
    # a single fixation loads as scalars
    check_fixations(rows, group, truth, {k: (800, 600) for k in truth}, tmp_path / "out")
    assert group["saliency_map"][:].max() == 0  # OSIE ships fixations only


@pytest.mark.slow
def test_cat2000_train_and_test(tmp_path):
    truth = make_cat2000(tmp_path / "cat")
    rows, group = extract(tmp_path / "cat", "cat2000", tmp_path / "out", "--split", "train")
    assert [r["image_id"] for r in rows] == ["Action/001", "Action/002", "Affective/001"]  # Output/ skipped
    assert [r["category"] for r in rows] == ["Action", "Action", "Affective"]
    check_fixations(rows, group, truth, {k: (1920, 1080) for k in truth}, tmp_path / "out")
    test = list_images("cat2000", tmp_path / "cat", "test")
    assert [s.image_id for s in test] == ["Action/101"] and test[0].fixations_path is None


@pytest.mark.parametrize("dataset", ["mit1003", "osie", "cat2000"])
def test_adapters_list_and_read_ground_truth_without_a_run(tmp_path, dataset):
    """The fast tier's view of the three runs above: the same listing and ground truth, read by the
    pipeline's own decode and ground-truth steps, with no model and no Ray."""
    from saldata.datasets.ground_truth import GT_OK, load_ground_truth
    from saldata.pipelines.preprocess import load_image

    make, split, ids = {
        "mit1003": (make_mit1003, None, None),
        "osie": (make_osie, None, ["1001", "1002", "1003"]),
        "cat2000": (make_cat2000, "train", ["Action/001", "Action/002", "Affective/001"]),  # Output/ skipped
    }[dataset]
    truth = make(tmp_path / dataset)
    sources = list_images(dataset, tmp_path / dataset, split)
    assert [s.image_id for s in sources] == (ids or sorted(truth))
    sizes = {}
    for idx, source in enumerate(sources):
        image = load_image(idx, source, SIZE)
        assert image.error is None, image.error
        sizes[source.image_id] = image.orig_size
        gt = load_ground_truth(source, image.orig_size, SIZE)
        assert (gt.status, gt.error, gt.n_fixations) == (GT_OK, None, len(truth[source.image_id]))
        assert {tuple(p) for p in np.argwhere(gt.fixations)} == rasterise(truth[source.image_id], image.orig_size, SIZE)
        if dataset == "osie":
            assert gt.saliency is None  # OSIE ships fixations only
        else:
            folder = {"mit1003": "ALLFIXATIONMAPS", "cat2000": "trainSet/FIXATIONMAPS"}[dataset]
            name = f"{source.image_id}_fixMap.jpg" if dataset == "mit1003" else f"{source.image_id}.jpg"
            with Image.open(tmp_path / dataset / folder / name) as m:
                expected = np.asarray(m.convert("L").resize(SIZE, Image.Resampling.BILINEAR))
            np.testing.assert_array_equal(gt.saliency, expected)
    if dataset == "cat2000":
        assert [s.category for s in sources] == ["Action", "Action", "Affective"]
        test = list_images("cat2000", tmp_path / "cat2000", "test")
        assert [s.image_id for s in test] == ["Action/101"] and test[0].fixations_path is None
    if dataset == "mit1003":
        assert sizes["i1182314083"] == (768, 1024)


@pytest.mark.parametrize("dataset", ["mit1003", "osie", "cat2000"])
def test_wrong_layout_shows_the_expected_one(tmp_path, dataset):
    with pytest.raises(DatasetError, match="expected to look like") as info:
        list_images(dataset, tmp_path, None)
    assert str(tmp_path) in str(info.value)


def test_datasets_command_lists_every_adapter():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0
    for text in ("salicon", "mit1003", "osie", "cat2000", "folder:PATH", "ALLSTIMULI", "fixLocs", "fixations.mat"):
        assert text in result.output
