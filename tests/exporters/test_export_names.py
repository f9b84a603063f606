"""One image, one name in every export format (the README joins the two exports by it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.exporters.base import export_name
from tests.ray_free_run import build


def test_export_name_is_the_id_less_its_suffix_made_flat():
    assert export_name("COCO_val2014_000000000001", "/d/images/val/COCO_val2014_000000000001.jpg") == (
        "COCO_val2014_000000000001"
    )
    assert export_name("sub/a.png", "/root/sub/a.png") == "sub__a"  # a folder's id: a relative path
    assert export_name("a.png", "/root/a.png") == "a"
    assert export_name("Action/001", "/c/trainSet/Stimuli/Action/001.jpg") == "Action__001"  # CAT2000


@pytest.fixture(scope="module")
def nested_folder_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("nested")
    rng = np.random.default_rng(3)
    for name in ("top.png", "sub/X.jpg"):
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(root / "images" / name)
    return build(root / "out", dataset=f"folder:{root / 'images'}")


def test_a_folder_image_has_one_name_in_both_exports(nested_folder_output, tmp_path):
    # It was attention/<split>/sub__X.jpg.npy in one and maps/sub/X.npy in the other.
    trainer, pysal = tmp_path / "trainer", tmp_path / "pysaliency"
    for dest, format in ((trainer, "language-att"), (pysal, "pysaliency")):
        result = CliRunner().invoke(app, ["export", str(nested_folder_output), str(dest), "--format", format])
        assert result.exit_code == 0, result.output
    (split,) = [p.name for p in (trainer / "attention").iterdir()]
    trainer_names = sorted(p.name for p in (trainer / "attention" / split).iterdir())
    assert trainer_names == ["sub__X.npy", "top.npy"]
    assert sorted(json.loads((trainer / "salicon_valid.json").read_text())[split]) == trainer_names
    assert sorted(p.name for p in (pysal / "maps").iterdir()) == trainer_names
    assert sorted(p.stem for p in (pysal / "stimuli").iterdir()) == ["sub__X", "top"]  # pysaliency joins by stem


@pytest.fixture(scope="module")
def twins_output(tmp_path_factory):
    """A folder whose a.jpg and a.png differ only in suffix: one export name for two images."""
    root = tmp_path_factory.mktemp("twins")
    (root / "images").mkdir()
    rng = np.random.default_rng(4)
    for name in ("a.jpg", "a.png"):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(root / "images" / name)
    return build(root / "out", dataset=f"folder:{root / 'images'}")


@pytest.mark.parametrize("format", ["language-att", "pysaliency"])
def test_two_images_of_one_name_are_refused_naming_both(twins_output, tmp_path, format):
    result = CliRunner().invoke(app, ["export", str(twins_output), str(tmp_path / "dest"), "--format", format])
    assert result.exit_code == 2 and "'a.jpg' and 'a.png' would both be" in result.output, result.output
