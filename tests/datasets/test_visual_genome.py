"""The Visual Genome dataset: images in VG_100K/ and VG_100K_2/, ids the VG image ids, coco_id from
image_data.json; an extraction of it (the pipeline's steps, no Ray) and its objects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.datasets import open_dataset
from saldata.errors import DatasetError
from tests.objects.formats import write_coco

SIZES = {1001: (320, 240), 999: (200, 100), 1002: (160, 120)}  # VG id -> (width, height) of its file


def vg_root(root: Path, image_data: bool = True) -> Path:
    """Three images over both folders; 1001 is COCO image 1, 999 has no COCO id."""
    rng = np.random.default_rng(1001)
    for vg_id, folder in ((1001, "VG_100K"), (999, "VG_100K_2"), (1002, "VG_100K")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        width, height = SIZES[vg_id]
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / folder / f"{vg_id}.jpg")
    if image_data:
        entries = [
            {"image_id": 1001, "width": 320, "height": 240, "coco_id": 1},
            {"image_id": 999, "width": 200, "height": 100, "coco_id": None},
            {"image_id": 1002, "width": 160, "height": 120},
        ]
        (root / "image_data.json").write_text(json.dumps(entries))
    return root


def test_images_are_listed_by_vg_id_from_both_folders_with_their_coco_id(tmp_path):
    sources = open_dataset("visual_genome", vg_root(tmp_path)).list_images("all")
    assert [s.image_id for s in sources] == ["999", "1001", "1002"]  # numeric order, both folders
    assert [s.coco_id for s in sources] == [None, 1, None]
    assert sources[0].path.endswith("VG_100K_2/999.jpg") and sources[0].fixations_path is None


def test_without_image_data_json_there_is_no_coco_id(tmp_path):
    sources = open_dataset("visual_genome", vg_root(tmp_path, image_data=False)).list_images("all")
    assert [s.coco_id for s in sources] == [None, None, None]


def test_bad_layouts_are_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="No images in .*VG_100K or .*VG_100K_2"):
        open_dataset("visual_genome", tmp_path).list_images("all")
    root = vg_root(tmp_path / "both")
    (root / "VG_100K_2" / "1001.jpg").write_bytes((root / "VG_100K" / "1001.jpg").read_bytes())
    with pytest.raises(DatasetError, match="Image 1001 is in both"):
        open_dataset("visual_genome", root).list_images("all")
    root = vg_root(tmp_path / "odd")
    (root / "VG_100K" / "cat.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="cat.jpg is not named by a Visual Genome image id"):
        open_dataset("visual_genome", root).list_images("all")
    root = vg_root(tmp_path / "bad-json")
    (root / "image_data.json").write_text("[{")
    with pytest.raises(Exception, match="image_data.json is not JSON"):
        open_dataset("visual_genome", root).list_images("all")


def test_saldata_datasets_lists_visual_genome():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0 and "visual_genome  splits: all" in result.output and "VG_100K_2" in result.output


@pytest.fixture(scope="module")
def vg_output(tmp_path_factory, tiny_model_dir):
    """The readers' demo settings on the Visual Genome fixture, built with the pipeline's steps (no Ray)."""
    from tests.ray_free_run import build

    root = vg_root(tmp_path_factory.mktemp("vg-data"))
    return build(tmp_path_factory.mktemp("vg-out") / "out", dataset="visual_genome", data_root=root), root


def test_visual_genome_extracts_with_its_ids_and_coco_ids_and_takes_its_objects(vg_output, tmp_path):
    out, root = vg_output
    output = saldata.open(out)
    images = output.images.select(["idx", "dataset", "image_id", "coco_id", "status", "gt_status"]).to_pylist()
    assert images == [
        {
            "idx": 0,
            "dataset": "visual_genome",
            "image_id": "999",
            "coco_id": None,
            "status": "done",
            "gt_status": "none",
        },
        {"idx": 1, "dataset": "visual_genome", "image_id": "1001", "coco_id": 1, "status": "done", "gt_status": "none"},
        {
            "idx": 2,
            "dataset": "visual_genome",
            "image_id": "1002",
            "coco_id": None,
            "status": "done",
            "gt_status": "none",
        },
    ]
    (root / "objects.json").write_text(
        json.dumps(
            [{"image_id": 999, "objects": [{"object_id": 7, "x": 50, "y": 25, "w": 100, "h": 50, "names": ["car"]}]}]
        )
    )
    copy = shutil.copytree(out, tmp_path / "out")
    coco = write_coco(tmp_path / "i.json")
    result = CliRunner().invoke(app, ["objects", str(copy), "--visual-genome", str(root), "--coco", str(coco)])
    assert result.exit_code == 0, result.output
    rows = {(r["source"], r["object_id"]): r for r in saldata.open(copy).objects().to_pylist()}
    assert set(rows) == {("visual_genome", 7), ("coco", 101)}
    # VG image 999 (200x100, by its image_id) stored at 640x480: x by 3.2, y by 4.8
    car = rows[("visual_genome", 7)]
    assert (car["idx"], car["bbox_x"], car["bbox_y"], car["bbox_w"], car["bbox_h"]) == (0, 160.0, 120.0, 320.0, 240.0)
    assert saldata.open(copy).object_mask(0, 7).sum() == 320 * 240
    assert rows[("coco", 101)]["idx"] == 1  # COCO image 1 is VG image 1001, by image_data.json's coco_id
