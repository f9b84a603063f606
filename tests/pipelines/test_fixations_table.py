"""The catalog's fixations rows, made by the pipeline's own steps from files in each dataset's real format.

Each image is decoded (``load_image``), its ground truth read on the writer (``ground_truth``) and
its rows built (``catalog_rows``), as ``stage_shard`` does; no model runs, so every image is a
failed one, which must not matter: fixations rows come with the ground truth, not the model.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest

from saldata.datasets import list_images
from saldata.extractors.prompts import resolve_prompt
from saldata.pipelines.model_actor import ImageOutcome
from saldata.pipelines.plan import Shard
from saldata.pipelines.preprocess import load_image
from saldata.pipelines.steps import catalog_rows, ground_truth
from saldata.schemas.catalog import FIXATIONS, STATUS_FAILED
from tests.datasets.formats import (
    make_cat2000,
    make_mit1003,
    make_osie,
    make_salicon,
    rasterise,
    write_osie_fixations,
    write_salicon_gaze,
)

SIZES = [(640, 480), (320, 240)]


def catalog(dataset: str, root, split, size):
    """(outcomes, truths, rows by table) for every image of a dataset, stored at ``size``."""
    sources = list_images(dataset, root, split)
    outcomes = [ImageOutcome(load_image(i, s, size), None, 0.0, "no model in this test") for i, s in enumerate(sources)]
    truths = [ground_truth(o, size) for o in outcomes]
    rows = catalog_rows(Shard(0, 0, tuple(sources)), outcomes, truths, resolve_prompt("describe"))
    pa.Table.from_pylist(rows["fixations"], schema=FIXATIONS.schema)  # what stage_tables writes: types hold
    return outcomes, truths, rows


def of(rows: dict, idx: int, *columns: str) -> list:
    """One column (or tuples of several) of an image's fixations rows, in table order."""
    picked = [r for r in rows["fixations"] if r["idx"] == idx]
    return [r[columns[0]] if len(columns) == 1 else tuple(r[c] for c in columns) for r in picked]


def map_of(rows: dict, idx: int, size: tuple[int, int]) -> np.ndarray:
    """The binary map an evaluator builds from the table: pixel (floor(y), floor(x))."""
    out = np.zeros((size[1], size[0]), np.uint8)
    for x, y in of(rows, idx, "x", "y"):
        out[int(np.floor(y)), int(np.floor(x))] = 1
    return out


def test_columns_are_the_public_interface():
    assert FIXATIONS.name == "fixations"
    assert [(c.name, str(c.type), c.nullable) for c in FIXATIONS.columns] == [
        ("idx", "int64", False),
        ("subject", "int32", True),
        ("fixation_index", "int32", False),
        ("x", "double", False),
        ("y", "double", False),
        ("orig_x", "double", False),
        ("orig_y", "double", False),
        ("duration_ms", "double", True),
    ]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dataset", ["mit1003", "cat2000"])
def test_binary_map_formats_give_row_major_points_without_subjects(tmp_path, dataset, size):
    make, split = {"mit1003": (make_mit1003, None), "cat2000": (make_cat2000, "train")}[dataset]
    truth = make(tmp_path)
    outcomes, truths, rows = catalog(dataset, tmp_path, split, size)
    for outcome, gt in zip(outcomes, truths):
        idx, points, orig = outcome.image.idx, truth[outcome.image.source.image_id], outcome.image.orig_size
        row_major = [(float(x), float(y)) for x, y in sorted(points.tolist(), key=lambda p: (p[1], p[0]))]
        assert of(rows, idx, "orig_x", "orig_y") == row_major
        assert len(row_major) == gt.n_fixations
        assert of(rows, idx, "subject") == [None] * len(row_major)  # a map has no subjects
        assert of(rows, idx, "fixation_index") == list(range(len(row_major)))
        assert of(rows, idx, "duration_ms") == [None] * len(row_major)
        assert of(rows, idx, "x") == [x * size[0] / orig[0] for x, _ in row_major]
        assert of(rows, idx, "y") == [y * size[1] / orig[1] for _, y in row_major]
        np.testing.assert_array_equal(map_of(rows, idx, size), gt.fixations)  # the stored fixation_map
        assert {tuple(p) for p in np.argwhere(map_of(rows, idx, size))} == rasterise(points, orig, size)


@pytest.mark.parametrize("size", [(800, 600), (640, 480)], ids=["original", "640x480"])
def test_osie_keeps_subjects_order_duplicates_and_durations(tmp_path, size):
    make_osie(tmp_path)
    write_osie_fixations(
        tmp_path / "data" / "eye" / "fixations.mat",
        {
            "1001.jpg": [np.array([[5, 5], [5, 5], [800, 600]]), np.array([[1.5, 2.5]])],  # 1-based
            "1002.jpg": [np.array([[7, 9]]), np.array([[7, 9], [801, 0]])],  # the same point twice; one off
            "1003.jpg": [np.array([[10, 10]])],
        },
        durations={"1001.jpg": [[100, 250, 80], [333.5]], "1002.jpg": [[50], [60, 70]], "1003.jpg": [[90]]},
    )
    _, truths, rows = catalog("osie", tmp_path, None, size)
    assert of(rows, 0, "subject", "fixation_index", "orig_x", "orig_y", "duration_ms") == [
        (0, 0, 4.0, 4.0, 100.0),
        (0, 1, 4.0, 4.0, 250.0),
        (0, 2, 799.0, 599.0, 80.0),
        (1, 0, 0.5, 1.5, 333.5),
    ]
    assert of(rows, 1, "subject", "fixation_index", "orig_x", "orig_y", "duration_ms") == [
        (0, 0, 6.0, 8.0, 50.0),
        (1, 0, 6.0, 8.0, 60.0),
        (1, 1, 800.0, -1.0, 70.0),
    ]
    assert [len(of(rows, i, "idx")) for i in range(3)] == [t.n_fixations for t in truths] == [4, 3, 1]
    if size == (800, 600):  # stored at its original size: x is the file's x - 1, exactly
        assert of(rows, 0, "x", "y") == [(4.0, 4.0), (4.0, 4.0), (799.0, 599.0), (0.5, 1.5)]
        assert of(rows, 1, "x", "y") == [(6.0, 8.0), (6.0, 8.0), (799.0, 0.0)]  # off the image: clipped
    else:
        assert of(rows, 0, "x", "y") == [(3.2, 3.2), (3.2, 3.2), (639.2, 479.2), (0.4, 1.2)]
        assert of(rows, 1, "x", "y")[2] == (639.0, 0.0)  # 800 -> 640 is past the edge: the last column
    assert truths[1].n_fixations_clipped == 1
    for idx, gt in enumerate(truths):
        np.testing.assert_array_equal(map_of(rows, idx, size), gt.fixations)


SALICON_SUBJECTS = [  # 1-based (x, y) per subject, as in the .mat
    [[10, 20], [10, 20], [100.5, 50]],  # a duplicate within a subject, a fractional point
    [],  # a subject who never fixated keeps its number
    [[10, 20], [641, 5], [0, 0]],  # the same point as subject 0; off the right; off the top-left
    [[640, 480]],  # the last pixel
]


def test_salicon_at_its_original_size_is_the_mat_minus_one(tmp_path):
    make_salicon(tmp_path, {"COCO_val2014_000000000001": SALICON_SUBJECTS})
    _, (gt,), rows = catalog("salicon", tmp_path, "val", (640, 480))
    assert of(rows, 0, "subject") == [0, 0, 0, 2, 2, 2, 3]
    assert of(rows, 0, "fixation_index") == [0, 1, 2, 0, 1, 2, 0]
    mat_minus_one = [(x - 1.0, y - 1.0) for subject in SALICON_SUBJECTS for x, y in subject]
    assert of(rows, 0, "orig_x", "orig_y") == mat_minus_one  # unclipped, as in the file
    inside = [i for i, (x, y) in enumerate(mat_minus_one) if 0 <= x < 640 and 0 <= y < 480]
    xy = of(rows, 0, "x", "y")
    assert [xy[i] for i in inside] == [mat_minus_one[i] for i in inside]
    assert xy[4] == (639.0, 4.0) and xy[5] == (0.0, 0.0)  # clipped into the image
    assert of(rows, 0, "duration_ms") == [None] * 7  # SALICON's .mat has no durations
    assert (gt.n_fixations, gt.n_fixations_clipped) == (7, 2)
    np.testing.assert_array_equal(map_of(rows, 0, (640, 480)), gt.fixations)


def test_salicon_resized_scales_then_clips(tmp_path):
    make_salicon(tmp_path, {"COCO_val2014_000000000001": SALICON_SUBJECTS})
    _, (gt,), rows = catalog("salicon", tmp_path, "val", (320, 240))
    assert of(rows, 0, "x") == [4.5, 4.5, 49.75, 4.5, 319.0, 0.0, 319.5]
    assert of(rows, 0, "y") == [9.5, 9.5, 24.5, 9.5, 2.0, 0.0, 239.5]
    assert of(rows, 0, "orig_x")[4] == 640.0  # the frame's coordinates stay as in the file
    np.testing.assert_array_equal(map_of(rows, 0, (320, 240)), gt.fixations)


def test_salicon_points_keep_their_own_frame(tmp_path):
    # The .mat's resolution (1280x960) is not the image's (640x480): orig_x, orig_y stay in it.
    make_salicon(tmp_path, {"COCO_val2014_000000000001": [[[1, 1]]]})
    mat = tmp_path / "fixations" / "val" / "COCO_val2014_000000000001.mat"
    write_salicon_gaze(mat, [np.array([[641, 481], [1281, 1], [1280, 960]])], (1280, 960))
    _, (gt,), rows = catalog("salicon", tmp_path, "val", (640, 480))
    assert of(rows, 0, "orig_x", "orig_y") == [(640.0, 480.0), (1280.0, 0.0), (1279.0, 959.0)]
    assert of(rows, 0, "x", "y") == [(320.0, 240.0), (639.0, 0.0), (639.5, 479.5)]
    assert gt.n_fixations_clipped == 1
    np.testing.assert_array_equal(map_of(rows, 0, (640, 480)), gt.fixations)


def test_rows_come_with_loaded_fixations_whatever_the_status(tmp_path):
    nan = float("nan")
    make_salicon(
        tmp_path,
        {
            "COCO_val2014_000000000001": [[[10, 10], [20, 20]], [[5, 6]]],
            "COCO_val2014_000000000002": [[[nan, 30], [40, 40]]],  # not finite: the file's fixations fail
        },
    )
    (tmp_path / "maps" / "val" / "COCO_val2014_000000000001.png").unlink()  # a failed saliency map only
    outcomes, truths, rows = catalog("salicon", tmp_path, "val", (640, 480))
    assert [r["status"] for r in rows["images"]] == [STATUS_FAILED] * 2  # no model ran
    assert [t.status for t in truths] == ["failed", "failed"]
    assert of(rows, 0, "subject", "fixation_index") == [(0, 0), (0, 1), (1, 0)]  # its fixations did load
    assert of(rows, 1, "idx") == [] and rows["images"][1]["n_fixations"] is None


def test_no_fixations_no_rows(tmp_path):
    make_salicon(tmp_path, {"COCO_val2014_000000000001": [[[10, 10]]]})
    shutil.rmtree(tmp_path / "fixations")  # a saliency map only
    _, (gt,), rows = catalog("salicon", tmp_path, "val", (640, 480))
    assert gt.n_fixations is None and rows["fixations"] == []
