"""Dataset readers list images in a stable order and explain a wrong layout."""

from __future__ import annotations

import pytest
from PIL import Image

from saldata.datasets import list_images
from saldata.datasets.demo import DEMO_IMAGES
from saldata.errors import DatasetError


def _jpg(path, size=(32, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def test_salicon_lists_the_split_by_stem(tmp_path):
    for name in ["COCO_val2014_000000000192", "COCO_val2014_000000000042"]:
        _jpg(tmp_path / "images" / "val" / f"{name}.jpg")
    _jpg(tmp_path / "images" / "train" / "COCO_train2014_000000000001.jpg")
    sources = list_images("salicon", tmp_path, "val")
    assert [s.image_id for s in sources] == ["COCO_val2014_000000000042", "COCO_val2014_000000000192"]
    assert {s.split for s in sources} == {"val"} and {s.dataset for s in sources} == {"salicon"}


@pytest.mark.parametrize(
    ("root", "split", "problem"),
    [
        (None, "val", "--data-root is required"),
        ("bare", "val", "not found"),  # a root without images/ (a missing root: tests/cli/test_help_text.py)
        ("empty", "val", "No images"),
        ("empty", "dev", "Unknown split"),
    ],
)
def test_salicon_bad_layout_shows_the_expected_layout(tmp_path, root, split, problem):
    if root == "empty":
        (tmp_path / "empty" / "images" / "val").mkdir(parents=True)
    if root == "bare":
        (tmp_path / "bare").mkdir()
    data_root = None if root is None else tmp_path / root
    with pytest.raises(DatasetError) as err:
        list_images("salicon", data_root, split)
    assert problem in str(err.value)
    assert "images/{train,val,test}/COCO_" in str(err.value)


def test_folder_is_recursive_with_relative_ids(tmp_path):
    _jpg(tmp_path / "b" / "x.png")
    _jpg(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    sources = list_images(f"folder:{tmp_path}", None, None)
    assert [s.image_id for s in sources] == ["a.jpg", "b/x.png"]


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match="salicon"):
        list_images("mit300", None, None)


def test_demo_works_offline_and_is_laid_out_like_salicon(demo_root):
    sources = list_images("demo", None, None)
    assert len(sources) == len(DEMO_IMAGES)
    assert all(s.image_id.startswith("COCO_val2014_") for s in sources)
    assert (demo_root / "maps" / "val").is_dir()
    sizes = []
    for source in sources:
        with Image.open(source.path) as image:
            sizes.append(image.size)
    assert (640, 480) in sizes and len(set(sizes)) > 1
